"""What delivery asks other services over HTTP: kitchen for a food point's location (cached), and
orders, the write side, to confirm a take or a completion.

The use cases see these through the protocols `PickupPoints` and `OrderTransitions` (the unit tests
give in-memory ones); HTTP stays here: an answer of orders becomes the order, a domain refusal, or
`OrdersUnavailable`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import quote

import structlog

from sandwich.platform.http import Response, ServiceClient, ServiceUnavailable
from sandwich.services.delivery.domain import DeliveryRefused, NotYourDelivery, OrderNotFound, Pickup

log = structlog.get_logger("delivery")

# Kitchen is asked once per call, briefly: a missing pickup point is filled in later, so there is no
# reason to hold an event's transaction or a courier's request on a slow kitchen.
KITCHEN_TIMEOUT_SECONDS = 1.5


class PickupPoints(Protocol):
    async def pickup(self, food_point_id: str) -> Pickup | None:
        """Where the food point's orders are collected; None when that cannot be told now."""
        ...


class OrderTransitions(Protocol):
    """orders, the write side, giving an order to a courier and taking it back delivered."""

    async def take(self, order_id: str, courier: str) -> dict[str, Any]: ...

    async def complete(self, order_id: str, courier: str) -> dict[str, Any]: ...

    async def status_of(self, order_id: str) -> str | None: ...


class OrdersUnavailable(Exception):
    """orders cannot be reached right now (or answered what is not an order): try again."""

    def __init__(self, reason: str):
        super().__init__(f"orders is unavailable: {reason}")
        self.reason = reason


class OrdersAnswerMalformed(OrdersUnavailable):
    """orders accepted (200) but its answer is not an order: the transition may well have happened."""


def orders_refusal(answer: Response, action: str) -> DeliveryRefused:
    """orders' refusal in delivery's words: its code and message, a 403 or 404 kept as such (not your
    delivery, no such order), anything else a conflict."""
    error = answer.body.get("error") if isinstance(answer.body, dict) else None
    code = str(error.get("code")) if isinstance(error, dict) and error.get("code") else "conflict"
    message = (
        str(error.get("message"))
        if isinstance(error, dict) and error.get("message")
        else f"orders refused to {action} the order."
    )
    kind = {403: NotYourDelivery, 404: OrderNotFound}.get(answer.status, DeliveryRefused)
    return kind(message, code=code)


class FoodPoints:
    """Pickup points of food points from kitchen, cached in-process for `ttl_seconds`.

    `pickup()` answers None when kitchen does not know the food point (remembered for a shorter
    while) or cannot be reached (not remembered, so the next call asks again).
    """

    def __init__(
        self,
        http: ServiceClient,
        *,
        ttl_seconds: float = 60.0,
        unknown_ttl_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.http = http
        self.ttl_seconds = ttl_seconds
        self.unknown_ttl_seconds = unknown_ttl_seconds
        self.clock = clock
        self._cache: dict[str, tuple[float, Pickup | None]] = {}

    def cached(self, food_point_id: str) -> tuple[bool, Pickup | None]:
        """(hit, pickup) from the cache alone."""
        entry = self._cache.get(food_point_id)
        if entry is None or entry[0] <= self.clock():
            return False, None
        return True, entry[1]

    async def pickup(self, food_point_id: str) -> Pickup | None:
        hit, pickup = self.cached(food_point_id)
        if hit:
            return pickup
        try:
            answer = await self.http.request(
                "kitchen",
                "GET",
                f"/internal/v1/food-points/{quote(food_point_id, safe='')}",
                idempotent=False,  # one attempt: a missing pickup is filled in later anyway
                timeout=KITCHEN_TIMEOUT_SECONDS,
            )
        except ServiceUnavailable as exc:
            log.warning("kitchen_unavailable", food_point_id=food_point_id, error=exc.reason)
            return None
        if answer.status == 200:
            pickup = Pickup.from_food_point(answer.body)
            if pickup is None:
                log.error("kitchen_food_point_malformed", food_point_id=food_point_id)
                return None
            self._cache[food_point_id] = (self.clock() + self.ttl_seconds, pickup)
            return pickup
        if answer.status in (404, 422):
            log.warning("kitchen_food_point_unknown", food_point_id=food_point_id, status=answer.status)
            self._cache[food_point_id] = (self.clock() + self.unknown_ttl_seconds, None)
            return None
        log.warning("kitchen_food_point_refused", food_point_id=food_point_id, status=answer.status)
        return None


class Orders:
    """The write side's internal transitions over HTTP; both are idempotent for the same courier, so
    retried. Each raises OrdersUnavailable when orders cannot be reached, and its refusal as a
    DeliveryRefused."""

    def __init__(self, http: ServiceClient):
        self.http = http

    async def take(self, order_id: str, courier: str) -> dict[str, Any]:
        """The order, now in delivery with `courier`."""
        return await self._transition(f"/internal/v1/orders/{order_id}/take", courier, "take")

    async def complete(self, order_id: str, courier: str) -> dict[str, Any]:
        """The order, now completed."""
        return await self._transition(f"/internal/v1/orders/{order_id}/complete", courier, "complete")

    async def _transition(self, path: str, courier: str, action: str) -> dict[str, Any]:
        """POST `path` (each call site writes its whole path, so the routes it reaches are plain to
        read, and to tests/unit/platform/test_trust_matches_the_code.py)."""
        try:
            answer = await self.http.request(
                "orders",
                "POST",
                path,
                json={"courier": courier},
                idempotent=True,
            )
        except ServiceUnavailable as exc:
            raise OrdersUnavailable(exc.reason) from exc
        if answer.status != 200:
            raise orders_refusal(answer, action)
        if not isinstance(answer.body, dict):
            log.error("orders_answer_malformed", action=action, status=answer.status)
            raise OrdersAnswerMalformed(f"the answer to {action} is not an order")
        return answer.body

    async def status_of(self, order_id: str) -> str | None:
        """The order's status as orders knows it; None when orders does not know the order."""
        try:
            answer = await self.http.request("orders", "GET", f"/internal/v1/orders/{order_id}")
        except ServiceUnavailable as exc:
            raise OrdersUnavailable(exc.reason) from exc
        if answer.status != 200 or not isinstance(answer.body, dict):
            return None
        order: Any = answer.body.get("order")
        status = order.get("status") if isinstance(order, dict) else None
        return str(status) if status is not None else None
