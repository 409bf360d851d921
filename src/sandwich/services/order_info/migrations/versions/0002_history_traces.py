"""order_history.trace_id: the trace of the request that made each status

Revision ID: 0002
Revises: 0001
"""

from sandwich.platform.migrations import execute_script

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    execute_script("ALTER TABLE order_history ADD COLUMN IF NOT EXISTS trace_id TEXT")


def downgrade() -> None:
    execute_script("ALTER TABLE order_history DROP COLUMN IF EXISTS trace_id")
