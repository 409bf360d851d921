"""notifications, inbox

Revision ID: 0001
Revises:
"""

from sandwich.platform.migrations import create_inbox_table, execute_script

revision = "0001"
down_revision = None


def upgrade() -> None:
    execute_script(
        """
        CREATE TABLE notifications (
            notification_id UUID PRIMARY KEY,
            user_id UUID NOT NULL,
            order_id UUID,
            kind TEXT NOT NULL,
            channel TEXT NOT NULL DEFAULT 'email' CHECK (channel IN ('email')),
            recipient TEXT,
            subject TEXT NOT NULL,
            body TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            sent_at TIMESTAMPTZ,
            CONSTRAINT notifications_once_per_order UNIQUE (order_id, kind)
        );
        CREATE INDEX notifications_by_user ON notifications (user_id, created_at DESC);
        CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';
        """
    )
    create_inbox_table()
