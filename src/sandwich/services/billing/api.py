"""Routes of billing: the customer's account (public) and the seeds' operate call (internal).

Every money-moving call runs with its idempotency key in one statement or one transaction, so a
repeated request replays the first answer (a refused payment included) and the work happens once
(commands.py). Here requests become commands, and outcomes and domain errors the contract's answers.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, ConfigDict, Field

from sandwich.platform.errors import ApiError
from sandwich.platform.idempotency import check_key
from sandwich.platform.identity import Identity, current_identity
from sandwich.platform.responses import JsonResponse
from sandwich.platform.validation import Text
from sandwich.services.billing import commands
from sandwich.services.billing.answers import OPERATED, REFUSED, REFUSED_BODY, operation_body
from sandwich.services.billing.context import BillingContext, context_of
from sandwich.services.billing.domain import (
    MAX_DEPOSIT,
    MAX_OPERATION,
    Account,
    KeyReused,
    MoneyOperation,
    OperationKind,
    Outcome,
    RequestInProgress,
)

router = APIRouter(tags=["billing"])


class AccountOut(BaseModel):
    balance: int
    currency: str


class OperationOut(BaseModel):
    operation_id: str
    kind: str
    amount: int
    balance_after: int
    created_at: str
    order_id: str | None = None


class OperationsOut(BaseModel):
    items: list[OperationOut]


class Deposit(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    amount: int = Field(ge=1, le=MAX_DEPOSIT)


class Operate(BaseModel):
    """The seeds' operate body: a payment or refund on a user's account."""

    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(pattern=r"^[0-9a-fA-F-]{36}$")
    username: Text | None = Field(default=None, max_length=64)
    kind: Literal["payment", "refund"]
    amount: int = Field(ge=1, le=MAX_OPERATION, strict=True)
    order_id: str | None = Field(default=None, pattern=r"^[0-9a-fA-F-]{36}$")


def _outcome_response(outcome: Outcome) -> JsonResponse:
    """A repeat replays the first answer as stored; a first request answers the operation (201) or
    the refusal (406 insufficient_funds), the same answers the store keeps with its key."""
    if outcome.replay is not None:
        return JsonResponse(outcome.replay.body, status_code=outcome.replay.status)
    if outcome.operation is None:
        return JsonResponse(REFUSED_BODY, status_code=REFUSED)
    return JsonResponse(operation_body(outcome.operation), status_code=OPERATED)


async def _operate(command: MoneyOperation, context: BillingContext) -> JsonResponse:
    uow = context.unit_of_work(atomic=commands.needs_transaction(command.kind))
    try:
        outcome = await commands.operate(command, uow)
    except KeyReused as exc:
        raise ApiError(
            409, "idempotency_key_reused", "This Idempotency-Key was already used with another request."
        ) from exc
    except RequestInProgress as exc:
        raise ApiError(
            409, "request_in_progress", "The first request with this Idempotency-Key is still running."
        ) from exc
    return _outcome_response(outcome)


def _account_body(account: Account) -> dict[str, Any]:
    return {"balance": account.balance, "currency": account.currency}


@router.get("/api/v1/billing/account", response_model=AccountOut)
async def get_account(
    identity: Annotated[Identity, Depends(current_identity)],
    context: Annotated[BillingContext, Depends(context_of)],
) -> dict[str, Any]:
    """The caller's account; opened on first use, so it exists as soon as the user does."""
    account = await commands.account_of(identity.user_id, identity.username, context.unit_of_work())
    return _account_body(account)


@router.post("/api/v1/billing/account/deposit", status_code=201, response_model=OperationOut)
async def deposit(
    body: Deposit,
    identity: Annotated[Identity, Depends(current_identity)],
    context: Annotated[BillingContext, Depends(context_of)],
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JsonResponse:
    key = check_key(idempotency_key)
    command = MoneyOperation(
        identity.user_id, identity.username, OperationKind.DEPOSIT, body.amount, None, key
    )
    return await _operate(command, context)


@router.get("/api/v1/billing/account/operations", response_model=OperationsOut)
async def list_operations(
    identity: Annotated[Identity, Depends(current_identity)],
    context: Annotated[BillingContext, Depends(context_of)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    uow = context.unit_of_work(atomic=False)  # one statement
    operations = await commands.operations_of(identity.user_id, limit, uow)
    return {"items": [operation_body(operation) for operation in operations]}


@router.post(
    "/billing/account/operate", status_code=201, response_model=OperationOut, include_in_schema=False
)
async def operate(
    body: Operate,
    context: Annotated[BillingContext, Depends(context_of)],
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JsonResponse:
    """Payment or refund for an order (ADR 001); 406 insufficient_funds when the balance is too low."""
    key = check_key(idempotency_key)
    if key is None:
        raise ApiError(400, "idempotency_key_required", "Money operations need an Idempotency-Key.")
    await context.injected_delay()
    command = MoneyOperation(
        body.user_id, body.username, OperationKind(body.kind), body.amount, body.order_id, key
    )
    return await _operate(command, context)


class OrderRefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(pattern=r"^[0-9a-fA-F-]{36}$")


class OrderRefundOut(BaseModel):
    order_id: str
    refunded: int
    operation: OperationOut | None = None


@router.post("/internal/v1/orders/{order_id}/refund", response_model=OrderRefundOut, include_in_schema=False)
async def refund_order(
    order_id: str, body: OrderRefundIn, context: Annotated[BillingContext, Depends(context_of)]
) -> dict[str, Any]:
    """Give back whatever was paid for an order and not refunded yet (commands.refund_order)."""
    try:
        uuid.UUID(order_id)
    except ValueError as exc:
        raise ApiError(422, "invalid_order_id", "Not an order id.") from exc
    refund = await commands.refund_order(order_id, body.user_id, context.unit_of_work())
    operation = operation_body(refund.operation) if refund.operation else None
    return {"order_id": refund.order_id, "refunded": refund.refunded, "operation": operation}


class NewAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(pattern=r"^[0-9a-fA-F-]{36}$")
    username: Text = Field(min_length=1, max_length=64)


@router.post("/internal/v1/accounts", response_model=AccountOut, include_in_schema=False)
async def open_account(
    body: NewAccount, context: Annotated[BillingContext, Depends(context_of)]
) -> dict[str, Any]:
    """Open a new user's account (the `sync` flow's registration calls this; repeating it is harmless)."""
    account = await commands.opened_account(body.user_id, body.username, context.unit_of_work())
    return _account_body(account)
