"""food_points, stock, pending_orders, assignments, inbox

Revision ID: 0001
Revises:
"""

from sandwich.platform.migrations import create_inbox_table, execute_script

revision = "0001"
down_revision = None


def upgrade() -> None:
    # active_orders <= capacity cannot be a CHECK (an admin may lower the capacity below the orders in
    # progress); the reserving UPDATE enforces it instead (see storage.reserve).
    execute_script(
        """
        CREATE TABLE food_points (
            id UUID PRIMARY KEY,
            name TEXT NOT NULL,
            address TEXT NOT NULL,
            lat DOUBLE PRECISION NOT NULL CHECK (lat BETWEEN -90 AND 90),
            lon DOUBLE PRECISION NOT NULL CHECK (lon BETWEEN -180 AND 180),
            capacity INTEGER NOT NULL CHECK (capacity >= 0),
            accepts_delivery BOOLEAN NOT NULL,
            active_orders INTEGER NOT NULL DEFAULT 0 CHECK (active_orders >= 0),
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE TABLE stock (
            food_point_id UUID NOT NULL REFERENCES food_points (id),
            ingredient TEXT NOT NULL,
            quantity BIGINT NOT NULL CHECK (quantity >= 0),
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (food_point_id, ingredient)
        );
        CREATE TABLE pending_orders (
            order_id UUID PRIMARY KEY,
            user_id UUID NOT NULL,
            username TEXT NOT NULL,
            items JSONB NOT NULL,
            delivery JSONB NOT NULL,
            lat DOUBLE PRECISION NOT NULL,
            lon DOUBLE PRECISION NOT NULL,
            paid_at TIMESTAMPTZ NOT NULL,
            received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_attempt_at TIMESTAMPTZ,
            cancel_requested_at TIMESTAMPTZ
        );
        CREATE INDEX pending_orders_oldest_first ON pending_orders (paid_at, order_id);
        CREATE TABLE assignments (
            order_id UUID PRIMARY KEY,
            food_point_id UUID NOT NULL REFERENCES food_points (id),
            user_id UUID NOT NULL,
            username TEXT NOT NULL,
            items JSONB NOT NULL,
            needs JSONB NOT NULL,
            delivery JSONB NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('reserved', 'confirmed', 'ready', 'released')),
            paid_at TIMESTAMPTZ NOT NULL,
            assigned_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            confirmed_at TIMESTAMPTZ,
            ready_at TIMESTAMPTZ,
            released_at TIMESTAMPTZ,
            confirm_attempts INTEGER NOT NULL DEFAULT 0,
            last_confirm_at TIMESTAMPTZ
        );
        CREATE INDEX assignments_in_progress ON assignments (food_point_id, assigned_at)
            WHERE state IN ('reserved', 'confirmed');
        CREATE INDEX assignments_unconfirmed ON assignments (assigned_at) WHERE state = 'reserved';
        """
    )
    create_inbox_table()
