"""Billing's unit of work: the accounts and the ledger, on one connection, with the events a
change makes (PaymentProcessed, in the async flow's consumer).

Which way it holds the connection is the caller's choice, made from the statements the use case
runs (`commands.needs_transaction`): a payment is one statement, atomic on its own, and runs without
BEGIN and COMMIT (two round trips of the three it took); money coming in opens the account first,
two statements in one transaction; the consumer joins the transaction of its inbox claim.
"""

from __future__ import annotations

from typing import Protocol

from sandwich.platform.db import Database
from sandwich.platform.sql import Connection
from sandwich.platform.unit_of_work import Announce, SqlUnitOfWork, UnitOfWork
from sandwich.services.billing.domain import Account, Operation, OperationKind, Outcome
from sandwich.services.billing.storage import PostgresAccounts, PostgresLedger


class Accounts(Protocol):
    async def open(self, user_id: str, username: str | None) -> bool: ...

    async def get(self, user_id: str) -> Account | None: ...

    async def lock(self, user_id: str) -> bool: ...

    async def move(self, user_id: str, delta: int) -> int | None: ...


class Ledger(Protocol):
    async def operate(
        self,
        user_id: str,
        kind: OperationKind,
        amount: int,
        order_id: str | None,
        key: str | None,
        request_hash: str,
    ) -> Outcome | None: ...

    async def first_answer(self, user_id: str, key: str, request_hash: str) -> Outcome | None: ...

    async def append(
        self,
        user_id: str,
        kind: OperationKind,
        amount: int,
        balance_after: int,
        order_id: str | None,
        key: str | None,
    ) -> Operation: ...

    async def of_user(self, user_id: str, limit: int) -> list[Operation]: ...

    async def net_paid_for_order(self, user_id: str, order_id: str) -> int: ...


class BillingUnitOfWork(UnitOfWork, Protocol):
    # Read-only here, so that a unit's own repository classes (Postgres or in-memory) satisfy it.
    @property
    def accounts(self) -> Accounts: ...

    @property
    def ledger(self) -> Ledger: ...


class UnitsOfWork(Protocol):
    """Makes a unit: `atomic=False` for a use case whose one statement is atomic on its own."""

    def __call__(self, *, atomic: bool = True) -> BillingUnitOfWork: ...


class SqlBillingUnitOfWork(SqlUnitOfWork):
    accounts: Accounts
    ledger: Ledger

    def open_repositories(self, conn: Connection) -> None:
        self.accounts = PostgresAccounts(conn)
        self.ledger = PostgresLedger(conn)


def sql_units_of_work(database: Database, announce: Announce | None) -> UnitsOfWork:
    def unit_of_work(*, atomic: bool = True) -> BillingUnitOfWork:
        return SqlBillingUnitOfWork(database, announce, atomic=atomic)

    return unit_of_work
