"""What order_info asks another service: orders, the write side, for its copy of an order the read
model has not seen yet (read-your-writes right after placing one). The use cases see it through
`WriteSide`; HTTP stays here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from pydantic import BaseModel, ValidationError

from sandwich.platform.events import OrderSnapshot
from sandwich.platform.http import ServiceClient, ServiceUnavailable
from sandwich.services.order_info.domain import public_order

log = structlog.get_logger("order_info")


@dataclass(frozen=True)
class WrittenOrder:
    """orders' copy of one order: its owner, the order in the contract's shape, and its history as
    orders tells it (`status`, `at`)."""

    owner: str
    order: dict[str, Any]
    history: list[dict[str, str]]


class WriteSide(Protocol):
    async def order(self, order_id: uuid.UUID) -> WrittenOrder | None:
        """orders' copy, or None when it is unknown there, malformed, or orders is away."""
        ...


class _HistoryEntry(BaseModel):
    status: str
    at: str


class OrdersCopy:
    """GET /internal/v1/orders/{id} of orders: never raises, a fallback that fails is no order."""

    def __init__(self, http: ServiceClient):
        self.http = http

    async def order(self, order_id: uuid.UUID) -> WrittenOrder | None:
        try:
            response = await self.http.request("orders", "GET", f"/internal/v1/orders/{order_id}")
        except (ServiceUnavailable, RuntimeError) as exc:
            log.warning("orders_fallback_unavailable", order_id=str(order_id), error=str(exc))
            return None
        if response.status != 200 or not isinstance(response.body, dict):
            return None
        try:
            order = OrderSnapshot.model_validate(response.body.get("order"))
            history = [_HistoryEntry.model_validate(entry) for entry in response.body.get("history") or []]
        except ValidationError as exc:
            log.error("orders_fallback_malformed", order_id=str(order_id), error=str(exc))
            return None
        return WrittenOrder(
            owner=order.user_id,
            order=public_order(order.model_dump()),
            history=[entry.model_dump() for entry in history],
        )
