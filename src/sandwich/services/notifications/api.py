"""Routes of notifications: the caller's notifications, and the seeds' POST /api/v1/notification
that the sync flow calls instead of publishing an event.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from sandwich.platform.app import Service, service_of
from sandwich.platform.errors import ApiError
from sandwich.platform.events import OrderSnapshot
from sandwich.platform.http import ServiceUnavailable
from sandwich.platform.identity import Identity, current_identity
from sandwich.platform.responses import JsonResponse
from sandwich.platform.validation import Text
from sandwich.services.notifications import storage
from sandwich.services.notifications.domain import kind_for_status
from sandwich.services.notifications.handlers import Notifier

router = APIRouter(tags=["notifications"])

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

Kind = Literal["order_paid", "order_payment_failed", "order_cancelled", "order_completed"]


class NotificationOut(BaseModel):
    notification_id: str
    order_id: str | None
    kind: str
    channel: str
    subject: str
    body: str
    status: str
    created_at: str


class NotificationsOut(BaseModel):
    items: list[NotificationOut]


class NotificationRequest(BaseModel):
    """What the sync flow knows about an order's change: a kind, or a status the kind follows from.

    Either the order snapshot (as in an OrderEvent) or user_id with the order's id and total; fields
    given at the top level win over the snapshot's.
    """

    model_config = ConfigDict(extra="forbid")
    user_id: uuid.UUID | None = None
    order_id: uuid.UUID | None = None
    kind: Kind | None = None
    status: Text | None = Field(default=None, max_length=64)
    username: Text | None = Field(default=None, max_length=64)
    total: int | None = Field(default=None, ge=0)
    order: OrderSnapshot | None = None


def _as_uuid(name: str, value: uuid.UUID | str | None) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise ApiError(422, "invalid_field", f"{name} is not a UUID.") from exc


async def notifier_of(request: Request) -> Notifier:
    """FastAPI dependency: the Notifier wired by app.py."""
    notifier: Notifier = request.app.state.notifier
    return notifier


@router.get("/api/v1/notifications", response_model=NotificationsOut)
async def my_notifications(
    identity: Annotated[Identity, Depends(current_identity)],
    service: Annotated[Service, Depends(service_of)],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> JsonResponse:
    """The caller's own notifications, newest first (admins too see only their own)."""
    try:
        user_id = uuid.UUID(identity.user_id)
    except ValueError:
        return JsonResponse({"items": []})
    async with service.database.connect() as conn:
        items = await storage.of_user(conn, user_id, limit)
    return JsonResponse({"items": items})


@router.post(
    "/api/v1/notification",
    status_code=201,
    response_model=NotificationOut,
    responses={200: {"description": "This order already had this kind of notification"}},
)
async def notify(
    body: NotificationRequest,
    service: Annotated[Service, Depends(service_of)],
    notifier: Annotated[Notifier, Depends(notifier_of)],
) -> Response:
    """Store a letter (201), or answer the one already stored for this order and kind (200).

    204 when the given status deserves no letter. 503 when users cannot be asked for the address.
    """
    order = body.order
    user_id = _as_uuid("order.user_id", body.user_id or (order.user_id if order else None))
    if user_id is None:
        raise ApiError(422, "invalid_field", "user_id (or order) is required.")
    order_id = _as_uuid("order.order_id", body.order_id or (order.order_id if order else None))
    status = body.status or (order.status if order else None)
    kind = body.kind or (kind_for_status(status) if status else None)
    if kind is None:
        if status is None:
            raise ApiError(422, "invalid_field", "kind or status (or order) is required.")
        return Response(status_code=204)
    total = body.total if body.total is not None else (order.total if order else None)
    username = body.username or (order.username if order else None)
    try:
        async with service.database.begin() as conn:
            recorded = await notifier.record(
                conn,
                user_id=str(user_id),
                order_id=str(order_id) if order_id else None,
                kind=kind,
                username=username,
                total=total,
            )
    except ServiceUnavailable as exc:
        raise ApiError(503, "users_unavailable", "Contact data cannot be fetched right now.") from exc
    if recorded.created:
        notifier.wake_sender()
    return JsonResponse(recorded.notification, status_code=201 if recorded.created else 200)
