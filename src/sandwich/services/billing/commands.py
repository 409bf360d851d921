"""Billing's use cases: each takes its command and a unit of work, and returns domain results.

Money is integer minor units; a balance never goes negative (a payment larger than it is refused,
never partly applied); the ledger is only appended to; and every money-moving call is idempotent:
with its key it happens once, and a repeat gets the first answer again (a refused payment included).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sandwich.platform.events import (
    PAYMENT_PROCESSED,
    TOPIC_BILLING_PAYMENTS,
    Envelope,
    OrderPending,
    PaymentProcessed,
)
from sandwich.platform.idempotency import request_hash
from sandwich.platform.outbox import Event
from sandwich.services.billing.domain import (
    Account,
    MoneyOperation,
    Operation,
    OperationKind,
    OrderRefund,
    Outcome,
    RequestInProgress,
    payment_key,
    refund_key,
)
from sandwich.services.billing.unit_of_work import BillingUnitOfWork

Envelopes = Callable[[str, str, dict[str, object]], Envelope]
"""Makes the envelope of an event this service produces: type, key, payload (`Service.envelope`)."""

FIRST_ANSWER_POLLS = 50
FIRST_ANSWER_POLL_SECONDS = 0.02
"""How long a repeat waits for a first request's answer that is not stored yet (50 x 20 ms)."""


def needs_transaction(kind: OperationKind) -> bool:
    """Whether `operate` needs BEGIN and COMMIT: a payment is one statement, atomic on its own;
    money coming in opens the account first, two statements that go together."""
    return kind is not OperationKind.PAYMENT


async def operate(command: MoneyOperation, uow: BillingUnitOfWork) -> Outcome:
    """Move the balance and append the ledger row, once per idempotency key.

    Raises KeyReused when the key came with another body, RequestInProgress when the key's first
    request has not stored its answer yet."""
    async with uow:
        outcome = await _operate(command, uow)
        await uow.commit()
    return outcome


async def _operate(command: MoneyOperation, uow: BillingUnitOfWork) -> Outcome:
    """One statement, plus the stored answer when the key was taken."""
    body_hash = request_hash(
        {"kind": command.kind.value, "amount": command.amount, "order_id": command.order_id}
    )
    if command.kind is not OperationKind.PAYMENT:
        # Money coming in opens the account if it is not there yet (it is opened on first use).
        await uow.accounts.open(command.user_id, command.username)
    done = await uow.ledger.operate(
        command.user_id, command.kind, command.amount, command.order_id, command.key, body_hash
    )
    if done is not None:
        return done
    assert command.key is not None  # only a key can make the statement change nothing
    for _ in range(FIRST_ANSWER_POLLS):
        first = await uow.ledger.first_answer(command.user_id, command.key, body_hash)
        if first is not None:
            return first
        # A claim from before answers were stored with it: being finished.
        await asyncio.sleep(FIRST_ANSWER_POLL_SECONDS)
    raise RequestInProgress(command.key)


async def pay_for_order(pending: OrderPending, uow: BillingUnitOfWork, envelopes: Envelopes) -> Outcome:
    """ADR 002: charge an OrderPending and announce the verdict as PaymentProcessed, with the ledger
    row (and, in the consumer, the inbox claim), so a redelivered OrderPending charges nothing twice:
    its key is the one orders' synchronous payment call uses, one charge per order whichever way."""
    command = MoneyOperation(
        pending.user_id,
        pending.username,
        OperationKind.PAYMENT,
        pending.total,
        pending.order_id,
        payment_key(pending.order_id),
    )
    async with uow:
        outcome = await _operate(command, uow)
        verdict = PaymentProcessed(
            order_id=pending.order_id,
            user_id=pending.user_id,
            paid=outcome.paid,
            operation_id=outcome.operation.operation_id if outcome.operation else None,
        )
        envelope = envelopes(PAYMENT_PROCESSED, pending.order_id, verdict.model_dump())
        uow.events.record(Event(TOPIC_BILLING_PAYMENTS, envelope))
        await uow.commit()
    return outcome


async def refund_order(order_id: str, user_id: str, uow: BillingUnitOfWork) -> OrderRefund:
    """Give back whatever was paid for an order and not refunded yet, never more.

    Idempotent by its nature rather than by a key: a second call finds nothing left to refund, and a
    payment that lands after a cancellation is refunded by the next call. The account row lock makes
    two concurrent calls refund once.
    """
    async with uow:
        refund = await _refund(order_id, user_id, uow)
        await uow.commit()
    return refund


async def _refund(order_id: str, user_id: str, uow: BillingUnitOfWork) -> OrderRefund:
    if not await uow.accounts.lock(user_id):
        return OrderRefund(order_id, 0)
    owed = await uow.ledger.net_paid_for_order(user_id, order_id)
    if owed <= 0:
        return OrderRefund(order_id, 0)
    new_balance = await uow.accounts.move(user_id, owed)
    assert new_balance is not None  # money coming in never overdraws
    operation = await uow.ledger.append(
        user_id, OperationKind.REFUND, owed, new_balance, order_id, refund_key(order_id, new_balance)
    )
    return OrderRefund(order_id, owed, operation)


async def account_of(user_id: str, username: str | None, uow: BillingUnitOfWork) -> Account:
    """The user's account; opened on first use, so it exists as soon as the user does."""
    async with uow:
        found = await uow.accounts.get(user_id)
        if found is None:
            await uow.accounts.open(user_id, username)
            found = await uow.accounts.get(user_id)
        await uow.commit()
    assert found is not None
    return found


async def open_account(user_id: str, username: str | None, uow: BillingUnitOfWork) -> None:
    """Open a new user's account (ADR 003: when the user is created); repeating it is harmless."""
    async with uow:
        await uow.accounts.open(user_id, username)
        await uow.commit()


async def opened_account(user_id: str, username: str | None, uow: BillingUnitOfWork) -> Account:
    """Open a new user's account and show it (the `sync` flow's registration calls this)."""
    async with uow:
        await uow.accounts.open(user_id, username)
        found = await uow.accounts.get(user_id)
        await uow.commit()
    assert found is not None
    return found


async def operations_of(user_id: str, limit: int, uow: BillingUnitOfWork) -> list[Operation]:
    """The user's ledger, newest first (one statement: a unit with `atomic=False`)."""
    async with uow:
        return await uow.ledger.of_user(user_id, limit)
