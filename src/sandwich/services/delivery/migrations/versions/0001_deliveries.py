"""deliveries, inbox

Revision ID: 0001
Revises:
"""

from sandwich.platform.migrations import create_inbox_table, execute_script

revision = "0001"
down_revision = None


def upgrade() -> None:
    execute_script(
        """
        CREATE TABLE deliveries (
            order_id UUID PRIMARY KEY,
            status TEXT NOT NULL CHECK (status IN ('ready', 'in_delivery', 'completed')),
            food_point_id TEXT,
            pickup_lat DOUBLE PRECISION,
            pickup_lon DOUBLE PRECISION,
            pickup_address TEXT,
            dropoff_address TEXT NOT NULL,
            dropoff_lat DOUBLE PRECISION NOT NULL,
            dropoff_lon DOUBLE PRECISION NOT NULL,
            items JSONB NOT NULL,
            total BIGINT NOT NULL,
            courier TEXT,
            version INTEGER NOT NULL,
            ready_at TIMESTAMPTZ,
            taken_at TIMESTAMPTZ,
            completed_at TIMESTAMPTZ,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX deliveries_offered ON deliveries (ready_at, order_id)
            WHERE status = 'ready' AND courier IS NULL;
        CREATE INDEX deliveries_by_courier ON deliveries (courier, status) WHERE courier IS NOT NULL;
        CREATE INDEX deliveries_missing_pickup ON deliveries (food_point_id)
            WHERE pickup_lat IS NULL AND status = 'ready';
        """
    )
    create_inbox_table()
