"""outbox: billing publishes PaymentProcessed in the async flow (ADR 002)

Revision ID: 0002
Revises: 0001
"""

from sandwich.platform.migrations import create_outbox_table

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    create_outbox_table()
