"""Routes of order_info: the customer's orders and one order with its history (read model) and the live
stream of an order's status changes (Server-Sent Events).

Order events reach the consumer registered in app.py: from the broker, or in the sync flow pushed to
the platform's `POST /internal/v1/events/order.events` (platform/app.py, `events_router`).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, ValidationError
from starlette.responses import Response, StreamingResponse

from sandwich.platform.app import Service, service_of
from sandwich.platform.contract import OrderOut
from sandwich.platform.errors import ApiError
from sandwich.platform.events import OrderSnapshot
from sandwich.platform.http import ServiceUnavailable
from sandwich.platform.identity import Identity, current_identity
from sandwich.platform.responses import JsonResponse
from sandwich.services.order_info import storage
from sandwich.services.order_info.domain import may_read, public_history, public_order
from sandwich.services.order_info.live import TERMINAL_STATUSES, LiveOrders, status_events

log = structlog.get_logger("order_info")

router = APIRouter(tags=["orders"])

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
LIVE_STATE = "live_orders"
"""Where app.py keeps the process's `LiveOrders` in `Service.state`."""


class HistoryEntryOut(BaseModel):
    status: str
    at: str


class OrderWithHistoryOut(OrderOut):
    history: list[HistoryEntryOut]


class OrdersOut(BaseModel):
    items: list[OrderOut]


def _not_found() -> ApiError:
    return ApiError(404, "order_not_found", "No such order.")


@router.get("/api/v1/orders", response_model=OrdersOut)
async def my_orders(
    identity: Annotated[Identity, Depends(current_identity)],
    service: Annotated[Service, Depends(service_of)],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> JsonResponse:
    """The caller's orders, newest first, as far as the read model has seen them."""
    try:
        user_id = uuid.UUID(identity.user_id)
    except ValueError:
        return JsonResponse({"items": []})
    async with service.database.connect() as conn:
        snapshots = await storage.orders_of(conn, user_id, limit)
    return JsonResponse({"items": [public_order(snapshot) for snapshot in snapshots]})


@router.get("/api/v1/orders/{order_id}", response_model=OrderWithHistoryOut)
async def one_order(
    order_id: str,
    identity: Annotated[Identity, Depends(current_identity)],
    service: Annotated[Service, Depends(service_of)],
) -> JsonResponse:
    """One order with its history; someone else's order answers exactly like a missing one."""
    try:
        order_uuid = uuid.UUID(order_id)
    except ValueError as exc:
        raise _not_found() from exc
    async with service.database.connect() as conn:
        found = await storage.order_view(conn, order_uuid)
        history = await storage.order_history(conn, order_uuid) if found else []
    if found is None:
        # Read-your-writes: an order placed a moment ago may not have reached the read model yet.
        fallback = await _from_write_side(service, identity, order_uuid)
        if fallback is None:
            raise _not_found()
        return JsonResponse(fallback)
    owner, snapshot = found
    if not may_read(owner, identity.user_id, identity.is_admin):
        raise _not_found()
    history_out = public_history(history, with_traces=identity.is_admin)
    return JsonResponse({**public_order(snapshot), "history": history_out})


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
    service: Annotated[Service, Depends(service_of)],
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """Server-Sent Events of the order's status changes; someone else's order answers 404."""
    try:
        order_uuid = uuid.UUID(order_id)
    except ValueError as exc:
        raise _not_found() from exc
    async with service.database.connect() as conn:
        current = await storage.current_status(conn, order_uuid)
    if current is None:
        # Not in the read model yet: the write side says whether it exists and is the caller's; the
        # stream then starts once the read model has it.
        if await _from_write_side(service, identity, order_uuid) is None:
            raise _not_found()
    elif not may_read(current[0], identity.user_id, identity.is_admin):
        raise _not_found()
    after = int(last_event_id) if last_event_id and last_event_id.strip().isdigit() else None
    if current is not None and after is not None:
        entry = current[1]
        if entry.status in TERMINAL_STATUSES and after >= entry.version:
            # The client saw the end already; 204 tells an EventSource to stop reconnecting.
            return Response(status_code=204)
    live: LiveOrders = service.state[LIVE_STATE]
    return StreamingResponse(
        status_events(service.database, live, order_uuid, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _from_write_side(
    service: Service, identity: Identity, order_id: uuid.UUID
) -> dict[str, Any] | None:
    """The order as orders knows it, or None when it is unknown, not the caller's, or orders is away."""
    try:
        response = await service.http.request("orders", "GET", f"/internal/v1/orders/{order_id}")
    except (ServiceUnavailable, RuntimeError) as exc:
        log.warning("orders_fallback_unavailable", order_id=str(order_id), error=str(exc))
        return None
    if response.status != 200 or not isinstance(response.body, dict):
        return None
    try:
        order = OrderSnapshot.model_validate(response.body.get("order"))
        history = [HistoryEntryOut.model_validate(entry) for entry in response.body.get("history") or []]
    except ValidationError as exc:
        log.error("orders_fallback_malformed", order_id=str(order_id), error=str(exc))
        return None
    if not may_read(order.user_id, identity.user_id, identity.is_admin):
        return None
    return {**public_order(order.model_dump()), "history": [entry.model_dump() for entry in history]}
