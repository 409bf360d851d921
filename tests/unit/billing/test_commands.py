"""Billing's use cases through the in-memory unit of work: money moves once per key, a balance is
never overdrawn, refunds give back what was paid and never more, and verdicts are announced."""

from __future__ import annotations

import uuid

import pytest

import sandwich.services.billing.commands as commands
from sandwich.platform.events import PAYMENT_PROCESSED, TOPIC_BILLING_PAYMENTS, OrderPending
from sandwich.platform.idempotency import request_hash
from sandwich.services.billing.answers import REFUSED, REFUSED_BODY
from sandwich.services.billing.domain import (
    MAX_DEPOSIT,
    KeyReused,
    MoneyOperation,
    OperationKind,
    RequestInProgress,
)
from tests.unit.billing.fakes import FakeBillingUnitOfWork, envelopes

pytestmark = pytest.mark.unit

ALICE = "a11ce000-0000-4000-8000-000000000001"
BOB = "b0b00000-0000-4000-8000-000000000002"


def new_order() -> str:
    return str(uuid.uuid4())


def deposit(amount: int, key: str | None = None, user: str = ALICE) -> MoneyOperation:
    return MoneyOperation(user, "alice", OperationKind.DEPOSIT, amount, None, key)


def payment(amount: int, order_id: str, key: str | None = None, user: str = ALICE) -> MoneyOperation:
    return MoneyOperation(user, "alice", OperationKind.PAYMENT, amount, order_id, key or f"pay-{order_id}")


@pytest.fixture
def uow() -> FakeBillingUnitOfWork:
    return FakeBillingUnitOfWork()


async def balance(uow: FakeBillingUnitOfWork, user: str = ALICE) -> int | None:
    account = await uow.accounts.get(user)
    return account.balance if account else None


async def test_a_deposit_opens_the_account_on_first_use_and_credits_it(uow: FakeBillingUnitOfWork) -> None:
    outcome = await commands.operate(deposit(1500, "d-1"), uow)

    assert outcome.paid and outcome.replay is None
    assert outcome.operation is not None
    assert (outcome.operation.kind, outcome.operation.amount, outcome.operation.balance_after) == (
        OperationKind.DEPOSIT,
        1500,
        1500,
    )
    assert await balance(uow) == 1500
    assert uow.commits == 1


async def test_a_payment_debits_the_balance_and_names_its_order(uow: FakeBillingUnitOfWork) -> None:
    await commands.operate(deposit(1000), uow)
    order = new_order()

    outcome = await commands.operate(payment(400, order), uow)

    assert outcome.operation is not None
    assert (outcome.operation.kind, outcome.operation.balance_after) == (OperationKind.PAYMENT, 600)
    assert outcome.operation.order_id == order
    assert await balance(uow) == 600


async def test_a_payment_larger_than_the_balance_is_refused_and_moves_nothing(
    uow: FakeBillingUnitOfWork,
) -> None:
    await commands.operate(deposit(300), uow)

    outcome = await commands.operate(payment(301, new_order()), uow)

    assert not outcome.paid and outcome.operation is None
    assert await balance(uow) == 300
    assert [op.kind for op in await uow.ledger.of_user(ALICE, 10)] == [OperationKind.DEPOSIT]


async def test_a_refused_payment_repeated_is_refused_again_even_after_a_top_up(
    uow: FakeBillingUnitOfWork,
) -> None:
    order = new_order()
    await commands.operate(payment(500, order), uow)  # no account yet: a payment opens none
    assert await balance(uow) is None
    await commands.operate(deposit(1000), uow)

    repeat = await commands.operate(payment(500, order), uow)

    assert repeat.replay is not None
    assert (repeat.replay.status, repeat.replay.body) == (REFUSED, REFUSED_BODY)
    assert not repeat.paid
    assert await balance(uow) == 1000


async def test_a_repeat_with_the_same_key_and_body_replays_the_first_answer(
    uow: FakeBillingUnitOfWork,
) -> None:
    first = await commands.operate(deposit(700, "same"), uow)
    repeat = await commands.operate(deposit(700, "same"), uow)

    assert first.operation is not None and repeat.replay is not None
    assert repeat.replay.body["operation_id"] == first.operation.operation_id
    assert repeat.operation == first.operation
    assert await balance(uow) == 700
    assert len(await uow.ledger.of_user(ALICE, 10)) == 1


async def test_the_same_key_with_another_body_is_refused_and_changes_nothing(
    uow: FakeBillingUnitOfWork,
) -> None:
    await commands.operate(deposit(700, "same"), uow)
    commits = uow.commits

    with pytest.raises(KeyReused):
        await commands.operate(deposit(800, "same"), uow)

    assert await balance(uow) == 700
    assert uow.commits == commits and uow.rollbacks == 1


async def test_keys_are_per_user(uow: FakeBillingUnitOfWork) -> None:
    await commands.operate(deposit(100, "shared"), uow)
    outcome = await commands.operate(deposit(200, "shared", user=BOB), uow)

    assert outcome.replay is None
    assert (await balance(uow), await balance(uow, BOB)) == (100, 200)


async def test_a_key_whose_first_request_is_unfinished_is_in_progress(
    uow: FakeBillingUnitOfWork, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commands, "FIRST_ANSWER_POLL_SECONDS", 0.0)
    await commands.operate(deposit(1000), uow)
    order = new_order()
    command = payment(100, order)
    # A claim from before answers were stored with it, its request still running.
    uow.bank.keys[(ALICE, "pay-" + order)] = (_hash_of(command), None)

    with pytest.raises(RequestInProgress):
        await commands.operate(command, uow)

    assert await balance(uow) == 1000


def _hash_of(command: MoneyOperation) -> str:
    return request_hash({"kind": command.kind.value, "amount": command.amount, "order_id": command.order_id})


async def test_amounts_at_the_limits(uow: FakeBillingUnitOfWork) -> None:
    await commands.operate(deposit(MAX_DEPOSIT), uow)

    emptied = await commands.operate(payment(MAX_DEPOSIT, new_order()), uow)
    one_more = await commands.operate(payment(1, new_order()), uow)

    assert emptied.operation is not None and emptied.operation.balance_after == 0
    assert not one_more.paid
    assert await balance(uow) == 0


async def test_an_amount_that_is_not_positive_commits_nothing(uow: FakeBillingUnitOfWork) -> None:
    for bad in (0, -5):
        with pytest.raises(ValueError):
            await commands.operate(deposit(bad, f"bad-{bad}"), uow)
    assert await balance(uow) is None  # not even the account opened first
    assert uow.commits == 0


async def test_a_refund_gives_back_what_was_paid_and_a_second_one_nothing(
    uow: FakeBillingUnitOfWork,
) -> None:
    await commands.operate(deposit(1000), uow)
    order = new_order()
    await commands.operate(payment(650, order), uow)

    refund = await commands.refund_order(order, ALICE, uow)
    again = await commands.refund_order(order, ALICE, uow)

    assert refund.refunded == 650 and refund.operation is not None
    assert (refund.operation.kind, refund.operation.balance_after) == (OperationKind.REFUND, 1000)
    assert (again.refunded, again.operation) == (0, None)
    assert await balance(uow) == 1000


async def test_a_refund_never_gives_back_more_than_is_left_unrefunded(uow: FakeBillingUnitOfWork) -> None:
    await commands.operate(deposit(1000), uow)
    order = new_order()
    await commands.operate(payment(500, order), uow)
    partial = MoneyOperation(ALICE, "alice", OperationKind.REFUND, 200, order, "part")
    await commands.operate(partial, uow)

    refund = await commands.refund_order(order, ALICE, uow)

    assert refund.refunded == 300
    assert await balance(uow) == 1000


async def test_a_payment_that_lands_after_the_refund_is_refunded_by_the_next_call(
    uow: FakeBillingUnitOfWork,
) -> None:
    await commands.operate(deposit(1000), uow)
    order = new_order()
    assert (await commands.refund_order(order, ALICE, uow)).refunded == 0  # cancelled before it paid
    await commands.operate(payment(400, order), uow)  # the late payment

    late = await commands.refund_order(order, ALICE, uow)

    assert late.refunded == 400
    assert await balance(uow) == 1000


async def test_a_refund_for_a_user_without_an_account_opens_none(uow: FakeBillingUnitOfWork) -> None:
    refund = await commands.refund_order(new_order(), BOB, uow)

    assert refund.refunded == 0
    assert await balance(uow, BOB) is None


async def test_paying_for_a_pending_order_announces_the_verdict(uow: FakeBillingUnitOfWork) -> None:
    await commands.operate(deposit(1000), uow)
    paid, broke = new_order(), new_order()

    outcome = await commands.pay_for_order(
        OrderPending(order_id=paid, user_id=ALICE, username="a", total=900), uow, envelopes
    )
    await commands.pay_for_order(
        OrderPending(order_id=broke, user_id=ALICE, username="a", total=900), uow, envelopes
    )

    assert outcome.operation is not None
    assert [event.topic for event in uow.announced] == [TOPIC_BILLING_PAYMENTS] * 2
    assert uow.announced_types() == [PAYMENT_PROCESSED] * 2
    first, second = (event.envelope for event in uow.announced)
    assert (first.key, first.payload["paid"], first.payload["operation_id"]) == (
        paid,
        True,
        outcome.operation.operation_id,
    )
    assert (second.key, second.payload["paid"], second.payload["operation_id"]) == (broke, False, None)
    assert await balance(uow) == 100


async def test_a_pending_order_redelivered_is_charged_once_with_the_same_verdict(
    uow: FakeBillingUnitOfWork,
) -> None:
    await commands.operate(deposit(1000), uow)
    pending = OrderPending(order_id=new_order(), user_id=ALICE, username="a", total=300)

    await commands.pay_for_order(pending, uow, envelopes)
    await commands.pay_for_order(pending, uow, envelopes)

    assert await balance(uow) == 700
    first, second = (event.envelope.payload for event in uow.announced)
    assert first == second and first["paid"] is True


async def test_an_account_is_opened_on_first_look_and_opening_again_is_harmless(
    uow: FakeBillingUnitOfWork,
) -> None:
    account = await commands.account_of(ALICE, "alice", uow)
    await commands.open_account(ALICE, "alice", uow)
    again = await commands.opened_account(ALICE, "alice", uow)

    assert (account.balance, account.currency) == (0, "RUB")
    assert again == account


async def test_operations_are_listed_newest_first(uow: FakeBillingUnitOfWork) -> None:
    await commands.operate(deposit(100), uow)
    await commands.operate(deposit(200), uow)
    await commands.operate(payment(50, new_order()), uow)

    operations = await commands.operations_of(ALICE, 2, uow)

    assert [(op.kind, op.balance_after) for op in operations] == [
        (OperationKind.PAYMENT, 250),
        (OperationKind.DEPOSIT, 300),
    ]
