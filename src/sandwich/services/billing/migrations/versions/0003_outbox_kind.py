"""outbox: the kind of each event (the relay publishes it under its kind: brokers route by it)

Revision ID: 0003
Revises: 0002
"""

from sandwich.platform.migrations import add_outbox_kind

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    add_outbox_kind()
