"""supply version: waiting orders are retried only after what food points can take changed

Revision ID: 0002
Revises: 0001
"""

from sandwich.platform.migrations import execute_script

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    execute_script(
        """
        CREATE TABLE supply (id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL);
        INSERT INTO supply (id, version) VALUES (1, 0);
        ALTER TABLE pending_orders ADD COLUMN tried_at_supply BIGINT;
        """
    )
