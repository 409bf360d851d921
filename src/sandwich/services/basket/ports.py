"""The outside world as basket needs it: names and prices of menu items, from menu."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol

from sandwich.platform.http import ServiceClient, ServiceUnavailable
from sandwich.services.basket.domain import MenuEntry, canonical_id

# A basket read must not hang on a slow menu (it answers without prices instead), and must stay well
# inside the gateway's budget for one part of the orders page (2.5 s): per attempt, and in all.
MENU_TIMEOUT_SECONDS = 1.0
MENU_BUDGET_SECONDS = 1.5


class MenuUnavailable(Exception):
    pass


class Menu(Protocol):
    async def lookup(self, menu_item_ids: Iterable[str]) -> dict[str, MenuEntry]:
        """Name and price of each id the menu knows (unknown ids are absent); raises MenuUnavailable."""
        ...


class MenuCatalog:
    """GET {menu}/internal/v1/menu/items?ids=a,b -> {items: [{id, name, price, ingredients}]}.

    Unknown ids are simply absent from the answer. No cache: prices always come from the menu.
    """

    def __init__(self, http: ServiceClient):
        self.http = http

    async def lookup(self, menu_item_ids: Iterable[str]) -> dict[str, MenuEntry]:
        ids = sorted(set(menu_item_ids))
        if not ids:
            return {}
        try:
            async with asyncio.timeout(MENU_BUDGET_SECONDS):
                answer = await self.http.request(
                    "menu",
                    "GET",
                    "/internal/v1/menu/items",
                    params={"ids": ",".join(ids)},
                    timeout=MENU_TIMEOUT_SECONDS,
                )
        except ServiceUnavailable as exc:
            raise MenuUnavailable(str(exc)) from exc
        except TimeoutError as exc:
            raise MenuUnavailable(f"menu did not answer within {MENU_BUDGET_SECONDS} s") from exc
        if not answer.ok or not isinstance(answer.body, dict):
            raise MenuUnavailable(f"menu answered {answer.status}")
        found: dict[str, MenuEntry] = {}
        try:
            for item in answer.body["items"]:
                item_id = canonical_id(item["id"])
                if item_id is not None:
                    found[item_id] = MenuEntry(str(item["name"]), int(item["price"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise MenuUnavailable(f"menu answered an unexpected shape: {exc!r}") from exc
        return found
