"""token_version: raised on every role change, carried by tokens (claim `ver`) so that the gateway
refuses a token issued before the change

Revision ID: 0002
Revises: 0001
"""

from sandwich.platform.migrations import execute_script

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    execute_script("ALTER TABLE credentials ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0;")
