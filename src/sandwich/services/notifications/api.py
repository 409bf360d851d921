"""Routes of notifications: the caller's notifications, and the seeds' POST /api/v1/notification
that the sync flow calls instead of publishing an event.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from sandwich.platform.errors import ApiError
from sandwich.platform.events import OrderSnapshot, rfc3339
from sandwich.platform.http import ServiceUnavailable
from sandwich.platform.identity import Identity, current_identity
from sandwich.platform.responses import JsonResponse
from sandwich.platform.validation import Text
from sandwich.services.notifications import commands
from sandwich.services.notifications.context import NotificationsContext, context_of
from sandwich.services.notifications.domain import Notification, RecordLetter, kind_for_status

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


def notification_body(notification: Notification) -> dict[str, Any]:
    return {
        "notification_id": notification.notification_id,
        "order_id": notification.order_id,
        "kind": notification.kind,
        "channel": notification.channel,
        "subject": notification.subject,
        "body": notification.body,
        "status": notification.status,
        "created_at": rfc3339(notification.created_at),
    }


@router.get("/api/v1/notifications", response_model=NotificationsOut)
async def my_notifications(
    identity: Annotated[Identity, Depends(current_identity)],
    context: Annotated[NotificationsContext, Depends(context_of)],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> JsonResponse:
    """The caller's own notifications, newest first (admins too see only their own)."""
    try:
        user_id = uuid.UUID(identity.user_id)
    except ValueError:
        return JsonResponse({"items": []})
    letters = await commands.letters_of(str(user_id), limit, context.unit_of_work(atomic=False))
    return JsonResponse({"items": [notification_body(letter) for letter in letters]})


def _command_of(body: NotificationRequest) -> RecordLetter | None:
    """The letter the request asks for; None when its status deserves none."""
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
        return None
    total = body.total if body.total is not None else (order.total if order else None)
    username = body.username or (order.username if order else None)
    return RecordLetter(str(user_id), str(order_id) if order_id else None, kind, username, total)


@router.post(
    "/api/v1/notification",
    status_code=201,
    response_model=NotificationOut,
    responses={200: {"description": "This order already had this kind of notification"}},
)
async def notify(
    body: NotificationRequest, context: Annotated[NotificationsContext, Depends(context_of)]
) -> Response:
    """Store a letter (201), or answer the one already stored for this order and kind (200).

    204 when the given status deserves no letter. 503 when users cannot be asked for the address.
    """
    command = _command_of(body)
    if command is None:
        return Response(status_code=204)
    try:
        recorded = await commands.record_letter(command, context.unit_of_work(), context.contacts)
    except ServiceUnavailable as exc:
        raise ApiError(503, "users_unavailable", "Contact data cannot be fetched right now.") from exc
    if recorded.created:
        context.wake_sender()
    body_out = notification_body(recorded.notification)
    return JsonResponse(body_out, status_code=201 if recorded.created else 200)
