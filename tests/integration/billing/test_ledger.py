"""Billing's use cases on the real ledger: the one-statement payment with its key (autocommit),
money coming in (one transaction), refunds, and the consumer's unit joining the inbox's transaction
with its PaymentProcessed in the outbox."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

import sandwich.services.billing as billing_package
import sandwich.services.billing.commands as commands
from sandwich.platform.db import Database
from sandwich.platform.events import OrderPending
from sandwich.services.billing.answers import REFUSED, REFUSED_BODY
from sandwich.services.billing.domain import KeyReused, MoneyOperation, OperationKind
from sandwich.services.billing.unit_of_work import SqlBillingUnitOfWork, sql_units_of_work
from tests.integration.scratch import scratch_database
from tests.unit.billing.fakes import envelopes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

MIGRATIONS = Path(billing_package.__file__).parent / "migrations"


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    async with scratch_database("billing", MIGRATIONS) as database:
        yield database


async def test_money_moves_once_per_key_and_a_refused_payment_replays(db: Database) -> None:
    units = sql_units_of_work(db, None)
    user, order = str(uuid.uuid4()), str(uuid.uuid4())
    pay = MoneyOperation(user, None, OperationKind.PAYMENT, 500, order, "pay-1")

    refused = await commands.operate(pay, units(atomic=False))  # no account: refused
    top_up = MoneyOperation(user, "u", OperationKind.DEPOSIT, 800, None, "dep-1")
    deposited = await commands.operate(top_up, units())
    again = await commands.operate(top_up, units())
    replayed = await commands.operate(pay, units(atomic=False))

    assert refused.operation is None and refused.replay is None
    assert deposited.operation is not None and deposited.operation.balance_after == 800
    assert again.replay is not None and again.replay.body["operation_id"] == deposited.operation.operation_id
    assert replayed.replay is not None
    assert (replayed.replay.status, replayed.replay.body) == (REFUSED, REFUSED_BODY)
    with pytest.raises(KeyReused):
        await commands.operate(MoneyOperation(user, "u", OperationKind.DEPOSIT, 1, None, "dep-1"), units())
    assert (await commands.account_of(user, "u", units())).balance == 800


async def test_a_refund_gives_back_the_payment_once(db: Database) -> None:
    units = sql_units_of_work(db, None)
    user, order = str(uuid.uuid4()), str(uuid.uuid4())
    await commands.operate(MoneyOperation(user, "u", OperationKind.DEPOSIT, 1000, None, None), units())
    paid = await commands.operate(
        MoneyOperation(user, "u", OperationKind.PAYMENT, 300, order, "p"), units(atomic=False)
    )
    assert paid.operation is not None and paid.operation.balance_after == 700

    first = await commands.refund_order(order, user, units())
    second = await commands.refund_order(order, user, units())

    assert first.refunded == 300 and first.operation is not None
    assert first.operation.balance_after == 1000
    assert second.refunded == 0
    kinds = [op.kind for op in await commands.operations_of(user, 10, units(atomic=False))]
    assert kinds == [OperationKind.REFUND, OperationKind.PAYMENT, OperationKind.DEPOSIT]


async def test_the_consumer_charges_in_the_inbox_transaction_with_its_verdict(db: Database) -> None:
    user, order = str(uuid.uuid4()), str(uuid.uuid4())
    await commands.opened_account(user, "u", sql_units_of_work(db, None)())
    pending = OrderPending(order_id=order, user_id=user, username="u", total=100)
    async with db.begin() as conn:
        outcome = await commands.pay_for_order(pending, SqlBillingUnitOfWork.joining(conn, db), envelopes)
    assert not outcome.paid
    async with db.connect() as conn:
        rows = (await conn.execute(text("SELECT topic, key FROM outbox"))).all()
    assert [(row.topic, row.key) for row in rows] == [("billing.payments", order)]
