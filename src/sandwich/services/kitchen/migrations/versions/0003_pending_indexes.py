"""indexes that find the waiting orders worth a try without reading every waiting order

A pass of the assigner asked for "never tried, or tried before the last supply change, or past the
timeout" in one OR'ed condition, which PostgreSQL answers by reading every waiting order: with
thousands waiting (no food point able to take them) each paid order cost a scan of all of them.
Each part of the condition now has an index of its own (storage.pending_orders asks them apart).

Revision ID: 0003
Revises: 0002
"""

from sandwich.platform.migrations import execute_script

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    execute_script(
        """
        CREATE INDEX pending_orders_untried ON pending_orders (paid_at, order_id)
            WHERE tried_at_supply IS NULL AND cancel_requested_at IS NULL;
        CREATE INDEX pending_orders_by_supply_tried ON pending_orders (tried_at_supply)
            WHERE cancel_requested_at IS NULL;
        CREATE INDEX pending_orders_cancelling ON pending_orders (cancel_requested_at)
            WHERE cancel_requested_at IS NOT NULL;
        """
    )
