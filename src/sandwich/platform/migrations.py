"""Alembic glue shared by every service's `migrations/env.py`, and the platform's own tables.

Each service keeps its schema history in its own `migrations/versions`. The tables the platform's
mechanisms need (outbox, inbox, idempotency keys) are created by helpers called from a service's
first migration, so their shape is written once.
"""

from __future__ import annotations

from alembic import context, op


def run_env() -> None:
    """Body of every service's env.py: run migrations on the connection the platform hands in."""
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
    with context.begin_transaction():
        context.run_migrations()


def split_statements(script: str) -> list[str]:
    """Split a DDL script into statements (asyncpg runs one per call); `$$` bodies stay whole."""
    statements, current, in_body = [], [], False
    for line in script.splitlines():
        current.append(line)
        in_body ^= line.count("$$") % 2 == 1
        if not in_body and line.rstrip().endswith(";"):
            statement = "\n".join(current).strip()
            if statement.strip(";").strip():
                statements.append(statement)
            current = []
    rest = "\n".join(current).strip()
    if rest:
        statements.append(rest)
    return statements


def execute_script(script: str) -> None:
    for statement in split_statements(script):
        op.execute(statement)


def create_outbox_table() -> None:
    execute_script(
        """
        CREATE TABLE outbox (
            id BIGSERIAL PRIMARY KEY,
            event_id UUID NOT NULL UNIQUE,
            topic TEXT NOT NULL,
            key TEXT NOT NULL,
            envelope BYTEA NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
            published_at TIMESTAMPTZ,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT
        );
        CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
        """
    )


def add_outbox_kind() -> None:
    """The kind of each outbox event (an order's status), which the relay publishes it under."""
    op.execute("ALTER TABLE outbox ADD COLUMN kind TEXT")


def create_inbox_table() -> None:
    execute_script(
        """
        CREATE TABLE inbox (
            consumer TEXT NOT NULL,
            event_id UUID NOT NULL,
            handled_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer, event_id)
        );
        """
    )


def create_idempotency_table() -> None:
    execute_script(
        """
        CREATE TABLE idempotency_keys (
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            request_hash TEXT NOT NULL,
            resource_id TEXT,
            status_code INTEGER,
            response BYTEA,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (scope, key)
        );
        """
    )


def fold_usernames_unique(table: str) -> None:
    """Make `table.username` unique regardless of letter case (stored as typed, compared lower()).

    A table that already holds two usernames differing only in case cannot get the index: the
    migration stops and names them, so that an operator renames all but one (nothing is renamed
    behind anyone's back). Used by auth's credentials and users' profiles alike.
    """
    execute_script(
        f"""
        DO $$
        DECLARE clashes TEXT;
        BEGIN
            SELECT string_agg(folded, ', ' ORDER BY folded) INTO clashes FROM (
                SELECT lower(username) AS folded FROM {table}
                GROUP BY lower(username) HAVING count(*) > 1
            ) AS d;
            IF clashes IS NOT NULL THEN
                RAISE EXCEPTION 'usernames that differ only in letter case: %; rename all but one of each', clashes;
            END IF;
        END $$;
        CREATE UNIQUE INDEX {table}_username_folded ON {table} (lower(username));
        """
    )
