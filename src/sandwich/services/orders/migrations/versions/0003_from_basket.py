"""orders placed from the basket

Revision ID: 0003
Revises: 0002
"""

from sandwich.platform.migrations import execute_script

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    execute_script("ALTER TABLE orders ADD COLUMN from_basket BOOLEAN NOT NULL DEFAULT false;")
