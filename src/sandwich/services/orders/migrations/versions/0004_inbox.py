"""inbox: orders consumes PaymentProcessed in the async flow (ADR 002)

Revision ID: 0004
Revises: 0003
"""

from sandwich.platform.migrations import create_inbox_table

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    create_inbox_table()
