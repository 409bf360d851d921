"""outbox: the kind of each event (the relay publishes it under its kind: brokers route by it)

Revision ID: 0002
Revises: 0001
"""

from sandwich.platform.migrations import add_outbox_kind

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    add_outbox_kind()
