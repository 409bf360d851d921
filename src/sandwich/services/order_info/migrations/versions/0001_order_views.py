"""order_views, order_history, inbox

Revision ID: 0001
Revises:
"""

from sandwich.platform.migrations import create_inbox_table, execute_script

revision = "0001"
down_revision = None


def upgrade() -> None:
    execute_script(
        """
        CREATE TABLE order_views (
            order_id UUID PRIMARY KEY,
            user_id UUID NOT NULL,
            username TEXT NOT NULL,
            status TEXT NOT NULL,
            version INTEGER NOT NULL,
            snapshot JSONB NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX order_views_by_user ON order_views (user_id, created_at DESC);
        CREATE TABLE order_history (
            order_id UUID NOT NULL,
            version INTEGER NOT NULL,
            status TEXT NOT NULL,
            at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (order_id, version)
        );
        """
    )
    create_inbox_table()
