"""Ledger rules: what each operation does to a balance, and the limits of an amount.

Money is integer minor units (kopecks). A balance never goes negative: a payment larger than the
balance is refused (ADR 001 answers it with 406 insufficient_funds), never partially applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

MAX_DEPOSIT = 10_000_000
MAX_OPERATION = 1_000_000_000
CURRENCY = "RUB"


class OperationKind(StrEnum):
    DEPOSIT = "deposit"
    PAYMENT = "payment"
    REFUND = "refund"


class InsufficientFunds(Exception):
    def __init__(self, balance: int, amount: int):
        super().__init__(f"balance {balance} is less than {amount}")
        self.balance = balance
        self.amount = amount


def signed_amount(kind: OperationKind, amount: int) -> int:
    """How the operation moves the balance: deposits and refunds add, payments subtract."""
    if amount <= 0:
        raise ValueError("an operation's amount is always positive")
    return -amount if kind is OperationKind.PAYMENT else amount


def balance_after(balance: int, kind: OperationKind, amount: int) -> int:
    new_balance = balance + signed_amount(kind, amount)
    if new_balance < 0:
        raise InsufficientFunds(balance, amount)
    return new_balance


def ledger_balance(operations: list[tuple[OperationKind, int]]) -> int:
    """The balance a ledger implies: deposits and refunds minus payments."""
    return sum(signed_amount(kind, amount) for kind, amount in operations)


def payment_key(order_id: str) -> str:
    """The same key orders uses for its synchronous payment call: one charge per order, whatever way."""
    return f"order-{order_id}-payment"


def refund_key(order_id: str, balance_after: int) -> str:
    """The ledger key of an order's refund: one per balance it left, so a later refund of a payment
    that landed after the first refund is a row of its own."""
    return f"order-{order_id}-refund-{balance_after}"


@dataclass(frozen=True)
class Account:
    balance: int
    currency: str


@dataclass(frozen=True)
class Operation:
    """One row of the append-only ledger, as it was appended."""

    operation_id: str
    kind: OperationKind
    amount: int
    balance_after: int
    created_at: str  # RFC 3339, UTC, as the ledger recorded it
    order_id: str | None = None


@dataclass(frozen=True)
class MoneyOperation:
    """A command: move a user's money once per idempotency key (`key` None: no key, no replay)."""

    user_id: str
    username: str | None
    kind: OperationKind
    amount: int
    order_id: str | None
    key: str | None


@dataclass(frozen=True)
class FirstAnswer:
    """The first request's answer as the idempotency store kept it with the key: a repeat replays it
    verbatim (a refused payment included). Opaque here; its status and body are the API's."""

    status: int
    body: Any


@dataclass(frozen=True)
class Outcome:
    """What a money operation came to: the ledger row it appended, or no row when it was refused
    for insufficient funds (the balance unchanged). `replay` is set when the key's first request did
    the work and this is its answer again."""

    operation: Operation | None
    replay: FirstAnswer | None = None

    @property
    def paid(self) -> bool:
        return self.operation is not None


@dataclass(frozen=True)
class OrderRefund:
    """What refunding an order gave back: `refunded` 0 and no operation when nothing was owed."""

    order_id: str
    refunded: int
    operation: Operation | None = None


class KeyReused(Exception):
    """The Idempotency-Key was already used with another request body."""


class RequestInProgress(Exception):
    """The first request with this Idempotency-Key has not stored its answer yet."""
