"""The outside world as orders needs it: prices from menu, payments from billing.

Adapters are picked in app.py; commands never ask which interaction style runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from sandwich.platform.http import ServiceClient, ServiceUnavailable
from sandwich.services.orders.domain import Order


class PricesUnavailable(Exception):
    pass


@dataclass(frozen=True)
class PaymentOutcome:
    """paid is None when billing could not be asked: the order stays created and is retried."""

    paid: bool | None
    operation_id: str | None = None


class Payments(Protocol):
    async def pay(self, order: Order) -> PaymentOutcome: ...


class MenuPrices:
    """Names and prices of menu items from menu, cached briefly: prices come from the menu, always."""

    def __init__(self, http: ServiceClient, ttl_seconds: float = 2.0):
        self.http = http
        self.ttl_seconds = ttl_seconds
        self._cache: dict[str, tuple[float, tuple[str, int]]] = {}

    async def lookup(self, menu_item_ids: list[str]) -> dict[str, tuple[str, int]]:
        now = time.monotonic()
        found = {
            i: hit[1]
            for i in menu_item_ids
            if (hit := self._cache.get(i)) and now - hit[0] < self.ttl_seconds
        }
        missing = [i for i in menu_item_ids if i not in found]
        if missing:
            try:
                answer = await self.http.request(
                    "menu", "GET", "/internal/v1/menu/items", params={"ids": ",".join(missing)}
                )
            except ServiceUnavailable as exc:
                raise PricesUnavailable(str(exc)) from exc
            if not answer.ok:
                raise PricesUnavailable(f"menu answered {answer.status}")
            for item in answer.body["items"]:
                entry = (item["name"], int(item["price"]))
                self._cache[item["id"]] = (now, entry)
                found[item["id"]] = entry
        return found


class HttpPayments:
    """Pays through billing's operate call (ADR 001/003); the key makes a retry charge once."""

    def __init__(self, http: ServiceClient):
        self.http = http

    async def pay(self, order: Order) -> PaymentOutcome:
        body = {
            "user_id": order.user_id,
            "username": order.username,
            "kind": "payment",
            "amount": order.total,
            "order_id": order.order_id,
        }
        try:
            answer = await self.http.request(
                "billing",
                "POST",
                "/billing/account/operate",
                json=body,
                headers={"Idempotency-Key": payment_key(order.order_id)},
                idempotent=True,
            )
        except ServiceUnavailable:
            return PaymentOutcome(paid=None)
        if answer.status == 201:
            return PaymentOutcome(paid=True, operation_id=answer.body["operation_id"])
        if answer.status == 406:
            return PaymentOutcome(paid=False)
        return PaymentOutcome(paid=None)


def payment_key(order_id: str) -> str:
    return f"order-{order_id}-payment"


class Refunds(Protocol):
    async def refund(self, order: Order) -> bool:
        """True once billing has given back whatever was paid for the order (maybe nothing)."""
        ...


class HttpRefunds:
    """Billing's order refund: naturally idempotent (it refunds what was paid and not yet refunded)."""

    def __init__(self, http: ServiceClient):
        self.http = http

    async def refund(self, order: Order) -> bool:
        try:
            answer = await self.http.request(
                "billing",
                "POST",
                f"/internal/v1/orders/{order.order_id}/refund",
                json={"user_id": order.user_id},
                idempotent=True,
            )
        except ServiceUnavailable:
            return False
        return answer.ok


class BasketUnavailable(Exception):
    pass


class HttpBasket:
    """The customer's basket, read from basket when an order is placed without items."""

    def __init__(self, http: ServiceClient):
        self.http = http

    async def lines(self, user_id: str) -> list[tuple[str, int]]:
        try:
            answer = await self.http.request("basket", "GET", f"/internal/v1/baskets/{user_id}")
        except ServiceUnavailable as exc:
            raise BasketUnavailable(str(exc)) from exc
        if not answer.ok:
            raise BasketUnavailable(f"basket answered {answer.status}")
        return [(item["menu_item_id"], int(item["quantity"])) for item in answer.body["items"]]
