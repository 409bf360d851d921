"""sessions: who is signed in to the apps, kept on the server so that no page script ever holds a
token. The browser holds only a random session id (HttpOnly cookie); this table keeps its hash, the
user's access token sealed with web's own key, and the session's CSRF token.

Revision ID: 0001
Revises:
"""

from sandwich.platform.migrations import execute_script

revision = "0001"
down_revision = None


def upgrade() -> None:
    execute_script(
        """
        CREATE TABLE sessions (
            session_hash BYTEA PRIMARY KEY,
            sealed_token BYTEA NOT NULL,
            csrf_token TEXT NOT NULL,
            user_id UUID NOT NULL,
            username TEXT NOT NULL,
            roles TEXT[] NOT NULL,
            food_point_id UUID,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            expires_at TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX sessions_by_expiry ON sessions (expires_at);
        """
    )
