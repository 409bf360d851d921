"""ADR 002 steps 1-2: in the async flow the gateway itself takes POST /api/v1/order.

It checks what it can see without asking anyone (the token's user, the body's shape: the same
`OrderIn` that orders applies in the HTTP flows, the Idempotency-Key), publishes
`OrderCreateRequested` to `orders.create` and answers 202 with the order's id. What only orders can
judge (an unknown menu item, an empty basket, the same key with another body) ends the order as
`rejected` with a reason, later, in the read model.

Why a synchronous publish with a timeout, not an outbox of the gateway's own: the gateway keeps no
data, and an outbox would take orders while the broker is down, which is exactly what ADR 002 says
this style cannot do ("a broker failure stops all work"). So the broker's acknowledgement is the
order's acceptance: no acknowledgement within `PUBLISH_TIMEOUT_SECONDS`, 503 `broker_unavailable`.
A publish that timed out may still have been stored; the order id is derived from the user, the
Idempotency-Key and the body, so repeating the request with the same key names the same order and
orders creates it once.
"""

from __future__ import annotations

import asyncio
import uuid

import structlog
from pydantic import ValidationError
from starlette.responses import Response

from sandwich.platform.app import Service
from sandwich.platform.bus.base import BusUnavailable
from sandwich.platform.contract import OrderIn
from sandwich.platform.errors import ApiError, error_response, validation_error_response
from sandwich.platform.events import (
    ORDER_CREATE_REQUESTED,
    TOPIC_ORDERS_CREATE,
    DeliveryPayload,
    Envelope,
    OrderCreateRequested,
    RequestedLine,
    rfc3339,
    utcnow,
)
from sandwich.platform.idempotency import check_key, request_hash
from sandwich.platform.identity import Identity
from sandwich.platform.responses import JsonResponse
from sandwich.platform.tracing import ProducerSpans

log = structlog.get_logger("gateway.intake")

ORDER_CREATE_PATH = "/api/v1/order"
BROKER_ACK_SECONDS = 1.0
"""The gateway's bus waits this long for the broker's acknowledgement (its producer gives a send up
itself then, so nothing abandoned here is sent behind the client's back later)."""
PUBLISH_TIMEOUT_SECONDS = 1.8
"""The guard around the publish: API.md promises the 503 within 2 s."""
ORDER_IDS = uuid.UUID("5f0c8d1e-6a8b-4e0f-9d4c-2a7b9c1e3f50")
"""The namespace of derived order ids (uuid5)."""


def order_id_for(user_id: str, idempotency_key: str | None, body_hash: str) -> str:
    """The order's id: the same for a repeated request (user, key and body), new without a key."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(ORDER_IDS, f"{user_id}\n{idempotency_key}\n{body_hash}"))


def order_request(identity: Identity, body: OrderIn, idempotency_key: str | None) -> OrderCreateRequested:
    """The event for an accepted request; raises nothing (the body is valid already)."""
    body_hash = request_hash(body.model_dump())
    items = None
    if body.items is not None:
        items = [RequestedLine(menu_item_id=line.menu_item_id, quantity=line.quantity) for line in body.items]
    return OrderCreateRequested(
        order_id=order_id_for(identity.user_id, idempotency_key, body_hash),
        user_id=identity.user_id,
        username=identity.username,
        items=items,
        delivery=DeliveryPayload(**body.delivery.model_dump()),
        idempotency_key=idempotency_key,
        request_hash=body_hash,
        requested_at=rfc3339(utcnow()),
    )


def accepted_answer(request: OrderCreateRequested) -> dict[str, object]:
    """The 202 body (contract.OrderAcceptedOut): the order as far as the gateway knows it."""
    return {
        "order_id": request.order_id,
        "username": request.username,
        "status": "created",
        "items": [line.model_dump() for line in request.items or ()],
        "delivery": request.delivery.model_dump(),
        "created_at": request.requested_at,
        "updated_at": request.requested_at,
    }


class OrderIntake:
    """Publishes accepted orders to `orders.create` on the gateway's broker connection."""

    def __init__(self, service: Service, publish_timeout_seconds: float = PUBLISH_TIMEOUT_SECONDS):
        self.service = service
        self.publish_timeout_seconds = publish_timeout_seconds

    async def accept(self, identity: Identity, raw_body: bytes, idempotency_key: str | None) -> Response:
        if not raw_body.strip():
            return error_response(400, "missing_body", "A JSON body is required.")
        try:
            body = OrderIn.model_validate_json(raw_body)
            key = check_key(idempotency_key)
        except ValidationError as exc:
            return validation_error_response(exc.errors())
        except ApiError as exc:
            return error_response(exc.status, exc.code, exc.message)
        request = order_request(identity, body, key)
        envelope = self.service.envelope(ORDER_CREATE_REQUESTED, request.order_id, request.model_dump())
        try:
            # Keyed by the customer, not the order: one customer's requests are taken in the order
            # they were sent, so of two bodies under one Idempotency-Key the first one wins.
            await self._publish(request.user_id, envelope)
        except (BusUnavailable, TimeoutError) as exc:
            log.warning("order_request_not_published", order_id=request.order_id, error=repr(exc))
            return error_response(
                503,
                "broker_unavailable",
                "Orders cannot be taken right now: the event broker is unreachable. Nothing was "
                "ordered; repeat the request in a moment (with the same Idempotency-Key).",
                {"Retry-After": "2"},
            )
        return JsonResponse(accepted_answer(request), status_code=202)

    async def _publish(self, key: str, envelope: Envelope) -> None:
        bus = self.service.bus
        if bus is None:
            raise BusUnavailable("the gateway has no broker connection")
        spans = ProducerSpans(bus.name, [(TOPIC_ORDERS_CREATE, envelope.event_id, envelope.trace)])
        try:
            await asyncio.wait_for(
                bus.publish(TOPIC_ORDERS_CREATE, key, envelope.to_bytes(), spans.headers[0]),
                self.publish_timeout_seconds,
            )
        except BaseException as exc:
            spans.end(0, exc)
            raise
        spans.end(1, None)
