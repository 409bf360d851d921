"""usernames unique regardless of letter case: `ALICE` and `alice` are one user

Usernames are stored as typed and compared folded (lower()); a database that already holds two
usernames differing only in case stops the migration, naming them (platform/migrations.py).

Revision ID: 0003
Revises: 0002
"""

from sandwich.platform.migrations import fold_usernames_unique

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    fold_usernames_unique("credentials")
