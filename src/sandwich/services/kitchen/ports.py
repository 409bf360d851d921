"""The outside world as the kitchen needs it: recipes from menu, order transitions from orders.

The assigner and the routes depend on these small protocols, so tests can stand in for the peers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any, Protocol

from sandwich.platform.http import Response, ServiceClient, ServiceUnavailable
from sandwich.services.kitchen.domain import Recipe, clean_name

MENU_LOOKUP_BATCH = 200


class RecipesUnavailable(Exception):
    """menu could not be asked (down, or it answered something unexpected)."""


class RecipeBook(Protocol):
    async def recipes(self, menu_item_ids: Iterable[str]) -> dict[str, Recipe]:
        """Recipes of the known items among `menu_item_ids` (unknown ones are absent)."""
        ...


class OrdersPort(Protocol):
    async def assign(self, order_id: str, food_point_id: str) -> Response: ...

    async def ready(self, order_id: str, food_point_id: str) -> Response: ...

    async def cancel(self, order_id: str, reason: str) -> Response: ...

    async def get(self, order_id: str) -> Response: ...


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


class HttpOrders:
    """orders' internal transitions; each is naturally idempotent there, so retrying them is safe."""

    def __init__(self, http: ServiceClient):
        self.http = http

    async def _post(self, path: str, body: dict[str, Any]) -> Response:
        return await self.http.request("orders", "POST", path, json=body, idempotent=True)

    async def assign(self, order_id: str, food_point_id: str) -> Response:
        return await self._post(f"/internal/v1/orders/{order_id}/assign", {"food_point_id": food_point_id})

    async def ready(self, order_id: str, food_point_id: str) -> Response:
        return await self._post(f"/internal/v1/orders/{order_id}/ready", {"food_point_id": food_point_id})

    async def cancel(self, order_id: str, reason: str) -> Response:
        return await self._post(f"/internal/v1/orders/{order_id}/cancel", {"reason": reason})

    async def get(self, order_id: str) -> Response:
        return await self.http.request("orders", "GET", f"/internal/v1/orders/{order_id}")
