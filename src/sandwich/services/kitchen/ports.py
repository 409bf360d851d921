"""The outside world as the kitchen needs it: recipes from menu, order transitions from orders.

The assigner and the routes depend on these small protocols, so tests can stand in for the peers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from enum import StrEnum
from typing import Any, Protocol

import structlog

from sandwich.platform.http import Response, ServiceClient, ServiceUnavailable
from sandwich.services.kitchen.domain import Recipe, clean_name

log = structlog.get_logger("kitchen")

MENU_LOOKUP_BATCH = 200


class RecipesUnavailable(Exception):
    """menu could not be asked (down, or it answered something unexpected)."""


class RecipeBook(Protocol):
    async def recipes(self, menu_item_ids: Iterable[str]) -> dict[str, Recipe]:
        """Recipes of the known items among `menu_item_ids` (unknown ones are absent)."""
        ...


class OrdersAway(Exception):
    """orders could not be reached (`unexpected` False), or answered what the kitchen does not
    understand (True): asked again later."""

    def __init__(self, reason: str, *, unexpected: bool = False):
        super().__init__(reason)
        self.unexpected = unexpected


class Refusal(StrEnum):
    NOT_FOUND = "not_found"
    NOT_YOUR_FOOD_POINT = "not_your_food_point"
    ILLEGAL = "illegal"  # the order cannot take the step now (e.g. cancelled meanwhile)


class OrdersRefused(Exception):
    """orders said no to the step: why, with orders' own error code and message when it gave them."""

    def __init__(self, refusal: Refusal, code: str | None = None, message: str | None = None):
        super().__init__(f"{refusal.value}: {message or ''}")
        self.refusal = refusal
        self.code = code
        self.message = message


class OrdersPort(Protocol):
    """orders' steps as the kitchen takes them: each returns when orders agreed, raises
    OrdersRefused when it said no and OrdersAway when it could not be asked."""

    async def assign(self, order_id: str, food_point_id: str) -> None: ...

    async def ready(self, order_id: str, food_point_id: str) -> dict[str, Any]:
        """The order, ready now, as orders shows it."""
        ...

    async def cancel(self, order_id: str, reason: str) -> None: ...

    async def status_of(self, order_id: str) -> str | None:
        """The order's status at orders; None when it cannot be told now."""
        ...


class MenuRecipes:
    """Recipes (ingredients per menu item) from menu, cached in-process: they rarely change."""

    def __init__(self, http: ServiceClient, ttl_seconds: float = 60.0):
        self.http = http
        self.ttl_seconds = ttl_seconds
        self._cache: dict[str, tuple[float, Recipe]] = {}

    async def recipes(self, menu_item_ids: Iterable[str]) -> dict[str, Recipe]:
        wanted = sorted(set(menu_item_ids))
        now = time.monotonic()
        found: dict[str, Recipe] = {}
        for menu_item_id in wanted:
            hit = self._cache.get(menu_item_id)
            if hit is not None and now - hit[0] < self.ttl_seconds:
                found[menu_item_id] = hit[1]
        # menu answers 422 to an id that is not a UUID: such an item has no recipe, so it is left out.
        missing = [i for i in wanted if i not in found and _is_uuid(i)]
        for start in range(0, len(missing), MENU_LOOKUP_BATCH):
            batch = missing[start : start + MENU_LOOKUP_BATCH]
            try:
                answer = await self.http.request(
                    "menu", "GET", "/internal/v1/menu/items", params={"ids": ",".join(batch)}
                )
            except ServiceUnavailable as exc:
                raise RecipesUnavailable(str(exc)) from exc
            if not answer.ok or not isinstance(answer.body, dict):
                raise RecipesUnavailable(f"menu answered {answer.status}")
            try:
                for item in answer.body["items"]:
                    recipe: Recipe = tuple(
                        (clean_name(str(line["name"])), int(line["quantity"]))
                        for line in item.get("ingredients") or []
                    )
                    self._cache[str(item["id"])] = (now, recipe)
                    found[str(item["id"])] = recipe
            except (KeyError, TypeError, ValueError) as exc:
                raise RecipesUnavailable(f"menu answered a malformed body: {exc!r}") from exc
        return found

    def forget(self) -> None:
        self._cache.clear()


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


REFUSALS = {403: Refusal.NOT_YOUR_FOOD_POINT, 404: Refusal.NOT_FOUND, 409: Refusal.ILLEGAL}


def agreed(answer: Response, step: str, order_id: str) -> Any:
    """orders' answer to a step as the kitchen takes it: the body when it agreed (200), else
    OrdersRefused (403, 404, 409, with orders' error code and message) or OrdersAway."""
    if answer.status == 200:
        return answer.body
    refusal = REFUSALS.get(answer.status)
    if refusal is None:
        log.error(f"{step}_unexpected_answer", order_id=order_id, status=answer.status, body=answer.body)
        raise OrdersAway(f"orders answered {answer.status}", unexpected=True)
    error = answer.body.get("error") if isinstance(answer.body, dict) else None
    if isinstance(error, dict):
        raise OrdersRefused(
            refusal, str(error.get("code") or "") or None, str(error.get("message") or "") or None
        )
    raise OrdersRefused(refusal)


class HttpOrders:
    """orders' internal transitions; each is naturally idempotent there, so retrying them is safe."""

    def __init__(self, http: ServiceClient):
        self.http = http

    async def _post(self, path: str, body: dict[str, Any], step: str, order_id: str) -> Any:
        try:
            answer = await self.http.request("orders", "POST", path, json=body, idempotent=True)
        except ServiceUnavailable as exc:
            raise OrdersAway(str(exc)) from exc
        return agreed(answer, step, order_id)

    async def assign(self, order_id: str, food_point_id: str) -> None:
        await self._post(
            f"/internal/v1/orders/{order_id}/assign", {"food_point_id": food_point_id}, "assign", order_id
        )

    async def ready(self, order_id: str, food_point_id: str) -> dict[str, Any]:
        order = await self._post(
            f"/internal/v1/orders/{order_id}/ready", {"food_point_id": food_point_id}, "ready", order_id
        )
        if not isinstance(order, dict):
            log.error("ready_unexpected_answer", order_id=order_id, status=200, body=order)
            raise OrdersAway("orders answered a body that is not an order", unexpected=True)
        return order

    async def cancel(self, order_id: str, reason: str) -> None:
        await self._post(
            f"/internal/v1/orders/{order_id}/cancel", {"reason": reason}, "timeout_cancel", order_id
        )

    async def status_of(self, order_id: str) -> str | None:
        try:
            answer = await self.http.request("orders", "GET", f"/internal/v1/orders/{order_id}")
        except ServiceUnavailable:
            return None
        if answer.status != 200 or not isinstance(answer.body, dict):
            return None
        order = answer.body.get("order")
        status = order.get("status") if isinstance(order, dict) else None
        return status if isinstance(status, str) else None
