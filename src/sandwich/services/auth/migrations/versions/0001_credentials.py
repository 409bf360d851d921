"""credentials and signing keys

Revision ID: 0001
Revises:
"""

from sandwich.platform.migrations import execute_script

revision = "0001"
down_revision = None


def upgrade() -> None:
    execute_script(
        """
        CREATE TABLE credentials (
            user_id UUID PRIMARY KEY,
            username TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            roles TEXT[] NOT NULL DEFAULT ARRAY['customer'],
            food_point_id TEXT,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE TABLE signing_keys (
            kid TEXT PRIMARY KEY,
            private_pem BYTEA NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        """
    )
