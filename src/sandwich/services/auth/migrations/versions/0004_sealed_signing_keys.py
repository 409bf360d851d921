"""sealed_pem: token signing keys are kept sealed with a key outside the database (platform/sealing.py);
auth seals the plain ones it finds at start and clears their private_pem

Revision ID: 0004
Revises: 0003
"""

from sandwich.platform.migrations import execute_script

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    execute_script(
        """
        ALTER TABLE signing_keys ADD COLUMN sealed_pem BYTEA;
        ALTER TABLE signing_keys ALTER COLUMN private_pem DROP NOT NULL;
        ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_kept_one_way
            CHECK ((private_pem IS NULL) <> (sealed_pem IS NULL));
        """
    )
