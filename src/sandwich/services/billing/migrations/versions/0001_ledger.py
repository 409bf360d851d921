"""accounts, append-only ledger, idempotency keys, inbox

Revision ID: 0001
Revises:
"""

from sandwich.platform.migrations import create_idempotency_table, create_inbox_table, execute_script

revision = "0001"
down_revision = None


def upgrade() -> None:
    execute_script(
        """
        CREATE TABLE accounts (
            user_id UUID PRIMARY KEY,
            username TEXT,
            balance BIGINT NOT NULL DEFAULT 0 CHECK (balance >= 0),
            currency TEXT NOT NULL DEFAULT 'RUB',
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE TABLE operations (
            operation_id UUID PRIMARY KEY,
            user_id UUID NOT NULL REFERENCES accounts (user_id),
            kind TEXT NOT NULL CHECK (kind IN ('deposit', 'payment', 'refund')),
            amount BIGINT NOT NULL CHECK (amount > 0),
            balance_after BIGINT NOT NULL CHECK (balance_after >= 0),
            order_id UUID,
            idempotency_key TEXT,
            created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
        );
        CREATE INDEX operations_by_user ON operations (user_id, created_at DESC);
        CREATE INDEX operations_by_order ON operations (order_id) WHERE order_id IS NOT NULL;
        CREATE FUNCTION ledger_is_append_only() RETURNS trigger AS $$
        BEGIN
            RAISE EXCEPTION 'the ledger is append-only: % on operations is not allowed', TG_OP;
        END;
        $$ LANGUAGE plpgsql;
        CREATE TRIGGER operations_append_only BEFORE UPDATE OR DELETE ON operations
            FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only();
        """
    )
    create_idempotency_table()
    create_inbox_table()
