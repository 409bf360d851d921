"""orders: async requests that orders rejects (ADR 002) are stored `rejected`, unpriced (total 0)

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.execute("ALTER TABLE orders DROP CONSTRAINT orders_total_check")
    op.execute(
        "ALTER TABLE orders ADD CONSTRAINT orders_total_check "
        "CHECK (total > 0 OR (status = 'rejected' AND total = 0))"
    )


def downgrade() -> None:
    op.execute("DELETE FROM orders WHERE status = 'rejected'")
    op.execute("ALTER TABLE orders DROP CONSTRAINT orders_total_check")
    op.execute("ALTER TABLE orders ADD CONSTRAINT orders_total_check CHECK (total > 0)")
