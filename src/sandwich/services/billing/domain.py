"""Ledger rules: what each operation does to a balance, and the limits of an amount.

Money is integer minor units (kopecks). A balance never goes negative: a payment larger than the
balance is refused (ADR 001 answers it with 406 insufficient_funds), never partially applied.
"""

from __future__ import annotations

from enum import StrEnum

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
