"""orders, history, idempotency keys, outbox

Revision ID: 0001
Revises:
"""

from sandwich.platform.migrations import create_idempotency_table, create_outbox_table, execute_script

revision = "0001"
down_revision = None


def upgrade() -> None:
    execute_script(
        """
        CREATE TABLE orders (
            order_id UUID PRIMARY KEY,
            user_id UUID NOT NULL,
            username TEXT NOT NULL,
            status TEXT NOT NULL,
            items JSONB NOT NULL,
            total BIGINT NOT NULL CHECK (total > 0),
            delivery JSONB NOT NULL,
            food_point_id TEXT,
            courier TEXT,
            payment_operation_id TEXT,
            idempotency_key TEXT,
            version INTEGER NOT NULL DEFAULT 1,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX orders_by_user ON orders (user_id, created_at DESC);
        CREATE INDEX orders_awaiting_payment ON orders (created_at) WHERE status = 'created';
        CREATE TABLE order_history (
            order_id UUID NOT NULL REFERENCES orders (order_id),
            version INTEGER NOT NULL,
            status TEXT NOT NULL,
            at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (order_id, version)
        );
        """
    )
    create_idempotency_table()
    create_outbox_table()
