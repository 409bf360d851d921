"""The answers of billing's money calls, as the idempotency store keeps them with the key.

A payment claims its key and stores its answer in its own one statement (storage.py), so the answer
a repeat replays is written by the ledger's adapter, not by the route; the route answers a first
request with the same status and body, from the same definitions here. Use cases see only the
domain's `Outcome`, and a replay as an opaque `FirstAnswer`.
"""

from __future__ import annotations

from typing import Any

from sandwich.platform.errors import error_body
from sandwich.services.billing.domain import FirstAnswer, Operation, OperationKind, Outcome

OPERATED = 201
"""The operation was appended to the ledger (the body is the operation)."""
REFUSED = 406
"""A payment larger than the balance, refused (ADR 001), the body `REFUSED_BODY`."""
REFUSED_BODY: dict[str, Any] = error_body("insufficient_funds", "Not enough money on the account.")


def operation_body(operation: Operation) -> dict[str, Any]:
    """The operation as the API shows it; `order_id` only when it has one."""
    body: dict[str, Any] = {
        "operation_id": operation.operation_id,
        "kind": operation.kind.value,
        "amount": operation.amount,
        "balance_after": operation.balance_after,
        "created_at": operation.created_at,
    }
    if operation.order_id:
        body["order_id"] = operation.order_id
    return body


def operation_of(body: dict[str, Any]) -> Operation:
    return Operation(
        operation_id=body["operation_id"],
        kind=OperationKind(body["kind"]),
        amount=int(body["amount"]),
        balance_after=int(body["balance_after"]),
        created_at=body["created_at"],
        order_id=body.get("order_id"),
    )


def outcome_of(status: int, body: Any, *, replay: bool) -> Outcome:
    """The outcome an answer stands for (`replay`: the key's stored first answer, kept verbatim)."""
    operation = operation_of(body) if status == OPERATED else None
    return Outcome(operation, FirstAnswer(status, body) if replay else None)
