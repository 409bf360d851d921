"""cancellation: reason and refund state

Revision ID: 0002
Revises: 0001
"""

from sandwich.platform.migrations import execute_script

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    execute_script(
        """
        ALTER TABLE orders ADD COLUMN cancel_reason TEXT;
        ALTER TABLE orders ADD COLUMN refund_pending BOOLEAN NOT NULL DEFAULT false;
        CREATE INDEX orders_refund_pending ON orders (updated_at) WHERE refund_pending;
        """
    )
