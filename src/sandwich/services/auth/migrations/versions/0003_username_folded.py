"""usernames unique regardless of letter case: `ALICE` and `alice` are one user

Usernames are stored as typed and compared folded (lower()). A database that already holds two
usernames differing only in case cannot get the index: the migration stops and names them, so that
an operator renames all but one (nothing is renamed behind anyone's back).

Revision ID: 0003
Revises: 0002
"""

from sandwich.platform.migrations import execute_script

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    execute_script(
        """
        DO $$
        DECLARE clashes TEXT;
        BEGIN
            SELECT string_agg(folded, ', ' ORDER BY folded) INTO clashes FROM (
                SELECT lower(username) AS folded FROM credentials
                GROUP BY lower(username) HAVING count(*) > 1
            ) AS d;
            IF clashes IS NOT NULL THEN
                RAISE EXCEPTION 'usernames that differ only in letter case: %; rename all but one of each', clashes;
            END IF;
        END $$;
        CREATE UNIQUE INDEX credentials_username_folded ON credentials (lower(username));
        """
    )
