"""billing (mini_billing): accounts, an append-only ledger of operations, idempotency keys."""
