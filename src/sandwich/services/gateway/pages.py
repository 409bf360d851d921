"""The orders page in one call (ADR 000): the gateway asks order-info, basket-info, menu-info and
user-info at the same time and puts the answers together.

A page with a part missing is better than no page: a part whose service is down, slow, or answers
with an error is null and named in `unavailable`, and the page still answers 200.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from sandwich.platform.errors import ApiError
from sandwich.platform.identity import Identity

log = structlog.get_logger("gateway.pages")

# Per attempt (the client retries reads after quick failures), and for the whole part.
PART_TIMEOUT_SECONDS = 2.0
PART_BUDGET_SECONDS = 2.5


@dataclass(frozen=True)
class PagePart:
    name: str  # key in the page
    service: str
    path: str


ORDERS_PAGE: tuple[PagePart, ...] = (
    PagePart("user", "users", "/api/v1/user/me"),
    PagePart("orders", "order_info", "/api/v1/orders"),
    PagePart("basket", "basket", "/api/v1/basket"),
    PagePart("menu", "menu", "/api/v1/menu"),
)


class _Answer(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def body(self) -> Any: ...


class PageClient(Protocol):
    """What the page needs of platform.http.ServiceClient (a fake in unit tests)."""

    async def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> _Answer: ...

    def user_headers(self, identity: Identity) -> dict[str, str]: ...


async def _fetch_part(
    http: PageClient, part: PagePart, headers: dict[str, str], budget: float
) -> tuple[bool, Any]:
    """(True, body) when the part's service answered 2xx with JSON; (False, None) otherwise."""
    try:
        async with asyncio.timeout(budget):
            answer = await http.request(
                part.service, "GET", part.path, headers=headers, timeout=PART_TIMEOUT_SECONDS
            )
    except Exception as exc:  # down, timed out, breaker open, not configured, garbled answer
        log.warning("page_part_unavailable", part=part.name, service=part.service, error=repr(exc))
        return False, None
    if not 200 <= answer.status < 300 or answer.body is None:
        log.warning("page_part_failed", part=part.name, service=part.service, status=answer.status)
        return False, None
    return True, answer.body


async def assemble_page(
    http: PageClient,
    identity: Identity | None,
    parts: tuple[PagePart, ...] = ORDERS_PAGE,
    *,
    budget: float = PART_BUDGET_SECONDS,
) -> dict[str, Any]:
    """All parts fetched in parallel: {<part>: body or null, ..., unavailable: [failed parts, in order]}."""
    if identity is None:
        raise ApiError(401, "unauthorized", "Authentication required.")
    headers = http.user_headers(identity)
    results = await asyncio.gather(*(_fetch_part(http, part, headers, budget) for part in parts))
    page: dict[str, Any] = {}
    unavailable: list[str] = []
    for part, (ok, body) in zip(parts, results, strict=True):
        page[part.name] = body
        if not ok:
            unavailable.append(part.name)
    page["unavailable"] = unavailable
    return page


async def orders_page(http: PageClient, identity: Identity | None) -> dict[str, Any]:
    """GET /api/v1/pages/orders: {user, orders, basket, menu, unavailable}; always 200 for a caller."""
    return await assemble_page(http, identity)
