"""Routes of order_info: the customer's orders and one order with its history (read model) and the live
stream of an order's status changes (Server-Sent Events).

Order events reach the consumer registered in app.py: from the broker, or in the sync flow pushed to
the platform's `POST /internal/v1/events/order.events` (platform/app.py, `events_router`).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel
from starlette.responses import Response, StreamingResponse

from sandwich.platform.contract import OrderOut
from sandwich.platform.errors import ApiError
from sandwich.platform.identity import Identity, current_identity
from sandwich.platform.responses import JsonResponse
from sandwich.services.order_info.commands import (
    ReadOrder,
    customer_orders,
    order_stream_ended,
    order_with_history,
)
from sandwich.services.order_info.context import OrderInfoContext, context_of
from sandwich.services.order_info.domain import OrderNotFound, Reader
from sandwich.services.order_info.live import status_events

router = APIRouter(tags=["orders"])

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class HistoryEntryOut(BaseModel):
    status: str
    at: str


class OrderWithHistoryOut(OrderOut):
    history: list[HistoryEntryOut]


class OrdersOut(BaseModel):
    items: list[OrderOut]


def _not_found() -> ApiError:
    return ApiError(404, "order_not_found", "No such order.")


def _reader(identity: Identity) -> Reader:
    return Reader(identity.user_id, identity.is_admin)


def _read_order(raw_order_id: str, identity: Identity) -> ReadOrder:
    try:
        return ReadOrder(uuid.UUID(raw_order_id), _reader(identity))
    except ValueError as exc:
        raise _not_found() from exc


@router.get("/api/v1/orders", response_model=OrdersOut)
async def my_orders(
    identity: Annotated[Identity, Depends(current_identity)],
    ctx: Annotated[OrderInfoContext, Depends(context_of)],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> JsonResponse:
    """The caller's orders, newest first, as far as the read model has seen them."""
    return JsonResponse({"items": await customer_orders(_reader(identity), limit, ctx.uow())})


@router.get("/api/v1/orders/{order_id}", response_model=OrderWithHistoryOut)
async def one_order(
    order_id: str,
    identity: Annotated[Identity, Depends(current_identity)],
    ctx: Annotated[OrderInfoContext, Depends(context_of)],
) -> JsonResponse:
    """One order with its history; someone else's order answers exactly like a missing one."""
    query = _read_order(order_id, identity)
    try:
        found = await order_with_history(query, ctx.uow(), ctx.orders)
    except OrderNotFound as exc:
        raise _not_found() from exc
    return JsonResponse({**found.order, "history": found.history})


@router.get(
    "/api/v1/orders/{order_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`event: status` per change, `id` = the order's version, "
            '`data` = `{"order_id", "status", "version", "at"}`; first the current state, or every '
            "change after `Last-Event-ID`; a `: keep-alive` comment every 15 s; the stream ends after "
            "completed, cancelled, payment_failed or rejected.",
            "content": {"text/event-stream": {}},
        },
        204: {"description": "The order ended at or before `Last-Event-ID`: nothing more will come."},
    },
)
async def order_events(
    order_id: str,
    identity: Annotated[Identity, Depends(current_identity)],
    ctx: Annotated[OrderInfoContext, Depends(context_of)],
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """Server-Sent Events of the order's status changes; someone else's order answers 404."""
    query = _read_order(order_id, identity)
    after = int(last_event_id) if last_event_id and last_event_id.strip().isdigit() else None
    uow = ctx.uow()
    try:
        ended = await order_stream_ended(query, after, uow, ctx.orders)
    except OrderNotFound as exc:
        raise _not_found() from exc
    if ended:
        # The client saw the end already; 204 tells an EventSource to stop reconnecting.
        return Response(status_code=204)
    return StreamingResponse(
        status_events(uow, ctx.live, query.order_id, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
