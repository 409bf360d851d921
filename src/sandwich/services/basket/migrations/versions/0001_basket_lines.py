"""basket_lines, processed_orders, inbox

Revision ID: 0001
Revises:
"""

from sandwich.platform.migrations import create_inbox_table, execute_script

revision = "0001"
down_revision = None


def upgrade() -> None:
    execute_script(
        """
        CREATE TABLE basket_lines (
            user_id UUID NOT NULL,
            menu_item_id UUID NOT NULL,
            quantity INTEGER NOT NULL CHECK (quantity > 0),
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, menu_item_id)
        );
        CREATE TABLE processed_orders (
            order_id UUID PRIMARY KEY,
            user_id UUID NOT NULL,
            processed_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        """
    )
    create_inbox_table()
