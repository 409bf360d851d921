"""Billing's in-memory unit of work: one bank of balances, ledger rows and idempotency keys, seen
through the same two repositories the Postgres unit has, and rolled back as a whole."""

from __future__ import annotations

import uuid

from sandwich.platform.events import Envelope
from sandwich.services.billing.answers import OPERATED, REFUSED, REFUSED_BODY, operation_body, outcome_of
from sandwich.services.billing.domain import (
    CURRENCY,
    Account,
    FirstAnswer,
    KeyReused,
    Operation,
    OperationKind,
    Outcome,
    signed_amount,
)
from tests.unit.fakes import FakeUnitOfWork


class FakeBank:
    """What billing's database holds; the repositories below are views of it."""

    def __init__(self) -> None:
        self.balances: dict[str, int] = {}
        self.operations: list[tuple[str, Operation]] = []  # (user_id, row), oldest first
        self.keys: dict[tuple[str, str], tuple[str, FirstAnswer | None]] = {}
        self.clock = 0

    def now(self) -> str:
        self.clock += 1
        return f"2026-12-06T10:00:{self.clock:02d}.000000Z"

    def append(self, user_id: str, kind: OperationKind, amount: int, order_id: str | None) -> Operation:
        operation = Operation(str(uuid.uuid4()), kind, amount, self.balances[user_id], self.now(), order_id)
        self.operations.append((user_id, operation))
        return operation


class FakeAccounts:
    def __init__(self, bank: FakeBank):
        self.bank = bank

    async def open(self, user_id: str, username: str | None) -> bool:
        if user_id in self.bank.balances:
            return False
        self.bank.balances[user_id] = 0
        return True

    async def get(self, user_id: str) -> Account | None:
        balance = self.bank.balances.get(user_id)
        return Account(balance, CURRENCY) if balance is not None else None

    async def lock(self, user_id: str) -> bool:
        return user_id in self.bank.balances

    async def move(self, user_id: str, delta: int) -> int | None:
        balance = self.bank.balances.get(user_id)
        if balance is None or balance + delta < 0:
            return None
        self.bank.balances[user_id] = balance + delta
        return balance + delta


class FakeLedger:
    def __init__(self, bank: FakeBank):
        self.bank = bank

    async def operate(
        self,
        user_id: str,
        kind: OperationKind,
        amount: int,
        order_id: str | None,
        key: str | None,
        request_hash: str,
    ) -> Outcome | None:
        """As the one statement does: the key claimed with the answer, or nothing when it was taken."""
        delta = signed_amount(kind, amount)
        if key is not None and (user_id, key) in self.bank.keys:
            return None
        balance = self.bank.balances.get(user_id)
        if balance is not None and balance + delta >= 0:
            self.bank.balances[user_id] = balance + delta
            answer = FirstAnswer(OPERATED, operation_body(self.bank.append(user_id, kind, amount, order_id)))
        else:
            answer = FirstAnswer(REFUSED, REFUSED_BODY)
        if key is not None:
            self.bank.keys[(user_id, key)] = (request_hash, answer)
        return outcome_of(answer.status, answer.body, replay=False)

    async def first_answer(self, user_id: str, key: str, request_hash: str) -> Outcome | None:
        stored_hash, answer = self.bank.keys[(user_id, key)]
        if stored_hash != request_hash:
            raise KeyReused(key)
        if answer is None:
            return None
        return outcome_of(answer.status, answer.body, replay=True)

    async def append(
        self,
        user_id: str,
        kind: OperationKind,
        amount: int,
        balance_after: int,
        order_id: str | None,
        key: str | None,
    ) -> Operation:
        assert self.bank.balances[user_id] == balance_after  # the move came first, in this unit
        return self.bank.append(user_id, kind, amount, order_id)

    async def of_user(self, user_id: str, limit: int) -> list[Operation]:
        mine = [operation for owner, operation in self.bank.operations if owner == user_id]
        return list(reversed(mine))[:limit]

    async def net_paid_for_order(self, user_id: str, order_id: str) -> int:
        return sum(
            -signed_amount(op.kind, op.amount)
            for owner, op in self.bank.operations
            if owner == user_id and op.order_id == order_id and op.kind is not OperationKind.DEPOSIT
        )


class FakeBillingUnitOfWork(FakeUnitOfWork):
    repositories = ("bank",)

    def __init__(self) -> None:
        super().__init__()
        self.bank = FakeBank()
        self.accounts = FakeAccounts(self.bank)
        self.ledger = FakeLedger(self.bank)


def envelopes(event_type: str, key: str, payload: dict[str, object]) -> Envelope:
    return Envelope(type=event_type, producer="billing", key=key, payload=payload)
