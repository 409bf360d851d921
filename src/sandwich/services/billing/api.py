"""Routes of billing: the customer's account (public) and the seeds' operate call (internal).

Every money-moving call runs in one transaction with its idempotency key, so a repeated request
replays the first answer (a refused payment included) and the work happens once.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, ConfigDict, Field

from sandwich.platform.app import Service, service_of
from sandwich.platform.errors import ApiError, error_body
from sandwich.platform.idempotency import check_key, existing_claim, request_hash
from sandwich.platform.identity import Identity, current_identity
from sandwich.platform.observability import FAULT_DELAY
from sandwich.platform.responses import JsonResponse
from sandwich.platform.sql import Connection
from sandwich.platform.validation import Text
from sandwich.services.billing import storage
from sandwich.services.billing.domain import MAX_DEPOSIT, MAX_OPERATION, OperationKind

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


async def injected_delay(service: Service) -> None:
    """The benchmark's "billing answers 200 ms late" fault (SANDWICH_FAULT_DELAY_MS, 0 normally); the
    metric lets the benchmark see that the fault was in effect, whichever route or consumer paid."""
    if service.settings.fault_delay_ms > 0:
        with FAULT_DELAY.labels(service.name).time():
            await asyncio.sleep(service.settings.fault_delay_ms / 1000)


async def apply_operation(
    service: Service,
    user_id: str,
    username: str | None,
    kind: OperationKind,
    amount: int,
    order_id: str | None,
    key: str | None,
) -> tuple[int, dict[str, Any]]:
    """Move the balance and append the ledger row, once per idempotency key; (status, body).

    A payment is one statement, atomic on its own: it runs without BEGIN and COMMIT around it (two
    round trips of the three a payment took). Money coming in opens the account first: two
    statements, one transaction."""
    db = service.database
    async with db.connect() if kind is OperationKind.PAYMENT else db.begin() as conn:
        return await operate_in(conn, user_id, username, kind, amount, order_id, key)


async def operate_in(
    conn: Connection,
    user_id: str,
    username: str | None,
    kind: OperationKind,
    amount: int,
    order_id: str | None,
    key: str | None,
) -> tuple[int, dict[str, Any]]:
    """apply_operation on the caller's connection (the async flow's consumer runs it in the
    transaction of its inbox claim): one statement, plus the stored answer when the key was taken."""
    body_hash = request_hash({"kind": kind.value, "amount": amount, "order_id": order_id})
    if kind is not OperationKind.PAYMENT:
        # Money coming in opens the account if it is not there yet (it is opened on first use).
        await storage.open_account(conn, user_id, username)
    refused = error_body("insufficient_funds", "Not enough money on the account.")
    done = await storage.operate(conn, user_id, kind, amount, order_id, key, body_hash, refused)
    if done is not None:
        return done
    assert key is not None
    for _ in range(50):
        stored = await existing_claim(conn, user_id, key, body_hash)
        if stored.status_code is not None:
            return stored.status_code, stored.body
        await asyncio.sleep(0.02)  # a claim from before answers were stored with it: being finished
    raise ApiError(
        409, "request_in_progress", "The first request with this Idempotency-Key is still running."
    )


@router.get("/api/v1/billing/account", response_model=AccountOut)
async def get_account(
    identity: Annotated[Identity, Depends(current_identity)], service: Annotated[Service, Depends(service_of)]
) -> dict[str, Any]:
    """The caller's account; opened on first use, so it exists as soon as the user does."""
    async with service.database.begin() as conn:
        found = await storage.account(conn, identity.user_id)
        if found is None:
            await storage.open_account(conn, identity.user_id, identity.username)
            found = await storage.account(conn, identity.user_id)
    assert found is not None
    return {"balance": found[0], "currency": found[1]}


@router.post("/api/v1/billing/account/deposit", status_code=201, response_model=OperationOut)
async def deposit(
    body: Deposit,
    identity: Annotated[Identity, Depends(current_identity)],
    service: Annotated[Service, Depends(service_of)],
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JsonResponse:
    key = check_key(idempotency_key)
    status, answer = await apply_operation(
        service, identity.user_id, identity.username, OperationKind.DEPOSIT, body.amount, None, key
    )
    return JsonResponse(answer, status_code=status)


@router.get("/api/v1/billing/account/operations", response_model=OperationsOut)
async def list_operations(
    identity: Annotated[Identity, Depends(current_identity)],
    service: Annotated[Service, Depends(service_of)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    async with service.database.connect() as conn:
        return {"items": await storage.operations(conn, identity.user_id, limit)}


@router.post(
    "/billing/account/operate", status_code=201, response_model=OperationOut, include_in_schema=False
)
async def operate(
    body: Operate,
    service: Annotated[Service, Depends(service_of)],
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JsonResponse:
    """Payment or refund for an order (ADR 001); 406 insufficient_funds when the balance is too low."""
    key = check_key(idempotency_key)
    if key is None:
        raise ApiError(400, "idempotency_key_required", "Money operations need an Idempotency-Key.")
    await injected_delay(service)
    status, answer = await apply_operation(
        service, body.user_id, body.username, OperationKind(body.kind), body.amount, body.order_id, key
    )
    return JsonResponse(answer, status_code=status)


class OrderRefund(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(pattern=r"^[0-9a-fA-F-]{36}$")


class OrderRefundOut(BaseModel):
    order_id: str
    refunded: int
    operation: OperationOut | None = None


@router.post("/internal/v1/orders/{order_id}/refund", response_model=OrderRefundOut, include_in_schema=False)
async def refund_order(
    order_id: str, body: OrderRefund, service: Annotated[Service, Depends(service_of)]
) -> dict[str, Any]:
    """Give back whatever was paid for an order and not refunded yet.

    Idempotent by its nature rather than by a key: a second call finds nothing left to refund, and a
    payment that lands after a cancellation is refunded by the next call. The account row lock makes
    two concurrent calls refund once.
    """
    try:
        uuid.UUID(order_id)
    except ValueError as exc:
        raise ApiError(422, "invalid_order_id", "Not an order id.") from exc
    async with service.database.begin() as conn:
        if not await storage.lock_account(conn, body.user_id):
            return {"order_id": order_id, "refunded": 0, "operation": None}
        owed = await storage.net_paid_for_order(conn, body.user_id, order_id)
        if owed <= 0:
            return {"order_id": order_id, "refunded": 0, "operation": None}
        new_balance = await storage.move_balance(conn, body.user_id, owed)
        assert new_balance is not None
        operation = await storage.record_operation(
            conn,
            body.user_id,
            OperationKind.REFUND,
            owed,
            new_balance,
            order_id,
            f"order-{order_id}-refund-{new_balance}",
        )
    return {"order_id": order_id, "refunded": owed, "operation": operation}


class NewAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(pattern=r"^[0-9a-fA-F-]{36}$")
    username: Text = Field(min_length=1, max_length=64)


@router.post("/internal/v1/accounts", response_model=AccountOut, include_in_schema=False)
async def open_account(body: NewAccount, service: Annotated[Service, Depends(service_of)]) -> dict[str, Any]:
    """Open a new user's account (the `sync` flow's registration calls this; repeating it is harmless)."""
    async with service.database.begin() as conn:
        await storage.open_account(conn, body.user_id, body.username)
        found = await storage.account(conn, body.user_id)
    assert found is not None
    return {"balance": found[0], "currency": found[1]}
