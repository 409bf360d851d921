"""outbox: the kind of each event (the relay publishes it under its kind: brokers route by it)

Revision ID: 0005
Revises: 0004
"""

from sandwich.platform.migrations import add_outbox_kind

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    add_outbox_kind()
