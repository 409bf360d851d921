"""The orders page: parts fetched in parallel; a failed part is null and listed, the page still answers."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import pytest

from sandwich.platform.errors import ApiError
from sandwich.platform.http import ServiceUnavailable
from sandwich.platform.identity import Identity
from sandwich.services.gateway.pages import ORDERS_PAGE, PART_TIMEOUT_SECONDS, assemble_page

pytestmark = pytest.mark.unit

ALICE = Identity("7f6a3c1e-0000-4000-8000-0000000000aa", "alice", frozenset({"customer"}))

BODIES: dict[str, Any] = {
    "users": {"user_id": ALICE.user_id, "username": "alice"},
    "order_info": {"items": []},
    "basket": {"items": [], "total": 0, "prices_unavailable": False},
    "menu": {"items": [{"id": "m1", "name": "Club", "price": 45_000, "ingredients": []}]},
}


@dataclass
class FakeAnswer:
    status: int
    body: Any


class FakeClient:
    """Answers per service: a body (200), an int (that status), an exception, or "hang"."""

    def __init__(self, behaviour: dict[str, Any] | None = None, delay: float = 0.0):
        self.behaviour = {**BODIES, **(behaviour or {})}
        self.delay = delay
        self.calls: list[tuple[str, str, str, dict[str, str] | None, float | None]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> FakeAnswer:
        self.calls.append((service, method, path, headers, timeout))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            outcome = self.behaviour[service]
            if outcome == "hang":
                await asyncio.sleep(3600)
            if isinstance(outcome, BaseException):
                raise outcome
            if isinstance(outcome, int):
                return FakeAnswer(outcome, {"error": {"code": "x", "message": "x"}})
            return FakeAnswer(200, outcome)
        finally:
            self.in_flight -= 1

    def user_headers(self, identity: Identity) -> dict[str, str]:
        """Stands in for the gateway's signed assertion: names the user it asserts."""
        return {"X-Sandwich-User": f"asserted:{identity.user_id}"}


async def test_all_parts_answer() -> None:
    client = FakeClient()
    page = await assemble_page(client, ALICE)
    assert page == {
        "user": BODIES["users"],
        "orders": BODIES["order_info"],
        "basket": BODIES["basket"],
        "menu": BODIES["menu"],
        "unavailable": [],
    }
    asked = {(service, method, path) for service, method, path, _, _ in client.calls}
    assert asked == {
        ("users", "GET", "/api/v1/user/me"),
        ("order_info", "GET", "/api/v1/orders"),
        ("basket", "GET", "/api/v1/basket"),
        ("menu", "GET", "/api/v1/menu"),
    }
    for _, _, _, headers, timeout in client.calls:
        assert headers == {"X-Sandwich-User": f"asserted:{ALICE.user_id}"}
        assert timeout == PART_TIMEOUT_SECONDS


async def test_parts_are_fetched_in_parallel() -> None:
    client = FakeClient(delay=0.2)
    started = time.monotonic()
    await assemble_page(client, ALICE)
    assert client.max_in_flight == len(ORDERS_PAGE)
    assert time.monotonic() - started < 0.6


async def test_a_service_that_is_down_leaves_its_part_null() -> None:
    client = FakeClient({"basket": ServiceUnavailable("basket", "connection refused")})
    page = await assemble_page(client, ALICE)
    assert page["basket"] is None
    assert page["unavailable"] == ["basket"]
    assert page["user"] == BODIES["users"] and page["menu"] == BODIES["menu"]


async def test_several_failures_are_listed_in_page_order() -> None:
    client = FakeClient(
        {
            "menu": ServiceUnavailable("menu", "status 503"),
            "users": 500,
            "order_info": RuntimeError("garbled"),
        }
    )
    page = await assemble_page(client, ALICE)
    assert page["unavailable"] == ["user", "orders", "menu"]
    assert page["user"] is None and page["orders"] is None and page["menu"] is None
    assert page["basket"] == BODIES["basket"]


async def test_an_error_answer_or_an_empty_body_is_a_failed_part() -> None:
    page = await assemble_page(FakeClient({"users": 404, "menu": None}), ALICE)
    assert page["unavailable"] == ["user", "menu"]
    assert page["user"] is None and page["menu"] is None


async def test_a_slow_part_is_cut_off_and_the_rest_still_answers() -> None:
    client = FakeClient({"order_info": "hang"})
    started = time.monotonic()
    page = await assemble_page(client, ALICE, budget=0.2)
    assert time.monotonic() - started < 1.0
    assert page["orders"] is None and page["unavailable"] == ["orders"]
    assert page["user"] == BODIES["users"]


async def test_everything_down_is_still_a_page() -> None:
    down = {name: ServiceUnavailable(name, "down") for name in BODIES}
    page = await assemble_page(FakeClient(down), ALICE)
    assert page == {
        "user": None,
        "orders": None,
        "basket": None,
        "menu": None,
        "unavailable": ["user", "orders", "basket", "menu"],
    }


async def test_no_identity_is_401_and_asks_nobody() -> None:
    client = FakeClient()
    with pytest.raises(ApiError) as raised:
        await assemble_page(client, None)
    assert raised.value.status == 401
    assert client.calls == []
