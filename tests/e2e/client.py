"""A small client of the public API for the end-to-end tests (what any outside client would do)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Api:
    client: httpx.AsyncClient
    token: str | None = None
    username: str | None = None
    flow: str = "hybrid"

    def as_user(self, token: str, username: str | None = None) -> Api:
        return Api(self.client, token, username, self.flow)

    @property
    def accepted_status(self) -> int:
        """What POST /api/v1/order answers: 201 with the payment outcome, or 202 `created` (async)."""
        return 202 if self.flow == "async" else 201

    async def settled(self, answer: httpx.Response, timeout: float = 20.0) -> dict[str, Any]:
        """The order once its payment is settled: the answer itself in hybrid and sync; in async the
        answer is 202 `created` and the outcome is read from the read model."""
        assert answer.status_code == self.accepted_status, answer.text
        order: dict[str, Any] = answer.json()
        if self.flow != "async":
            return order
        assert order["status"] == "created"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = await self.get(f"/api/v1/orders/{order['order_id']}")
            if found.status_code == 200 and found.json()["status"] != "created":
                settled: dict[str, Any] = found.json()
                settled.pop("history", None)
                return settled
            await asyncio.sleep(0.1)
        raise AssertionError(f"order {order['order_id']} was not settled within {timeout}s")

    async def refused(self, answer: httpx.Response, status: int, code: str, timeout: float = 20.0) -> None:
        """A POST /api/v1/order the contract refuses. hybrid and sync answer it at once (status, code);
        in async the gateway accepts it (202) and orders ends the order `rejected` with the code as
        its reason, nothing priced or charged."""
        if self.flow != "async":
            assert answer.status_code == status, answer.text
            assert answer.json()["error"]["code"] == code, answer.text
            return
        assert answer.status_code == 202, answer.text
        order = await wait_for_status(self, answer.json()["order_id"], "rejected", timeout)
        assert order["reason"] == code and order["total"] == 0 and order["items"] == [], order
        assert [entry["status"] for entry in order["history"]] == ["rejected"], order

    async def seen_in_read_model(self, order: dict[str, Any], timeout: float = 20.0) -> None:
        """Wait until the read model (order_info) shows the order at the status it has: in hybrid and
        sync the POST answer carries it while the event is still on its way to the read model."""
        await eventually(
            lambda: self._shows(order["order_id"], order["status"]),
            timeout=timeout,
            interval=0.05,
        )

    async def _shows(self, order_id: str, status: str) -> bool:
        found = await self.get(f"/api/v1/orders/{order_id}")
        return found.status_code == 200 and found.json()["status"] == status

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.call("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.call("PUT", path, **kwargs)

    async def register(
        self, username: str | None = None, password: str = "correct-horse-1"
    ) -> tuple[str, str]:
        username = username or f"u{uuid.uuid4().hex[:12]}"
        answer = await self.client.post(
            "/api/v1/auth/register",
            json={"username": username, "password": password, "email": f"{username}@example.com"},
        )
        assert answer.status_code == 201, answer.text
        return username, password

    async def login(self, username: str, password: str) -> str:
        answer = await self.client.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        return token

    async def wait_for_login(self, username: str, password: str, timeout: float = 30.0) -> None:
        """The first admin is created in the background at auth's first start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = await self.client.post(
                "/api/v1/auth/login", json={"username": username, "password": password}
            )
            if answer.status_code == 200:
                return
            await asyncio.sleep(0.3)
        raise AssertionError(f"{username} could not log in within {timeout}s")

    async def new_customer(self, deposit: int = 0) -> Api:
        username, password = await self.register()
        customer = self.as_user(await self.login(username, password), username)
        if deposit:
            answer = await customer.post(
                "/api/v1/billing/account/deposit",
                json={"amount": deposit},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            assert answer.status_code == 201, answer.text
        return customer

    async def balance(self) -> int:
        answer = await self.get("/api/v1/billing/account")
        assert answer.status_code == 200, answer.text
        return int(answer.json()["balance"])

    async def operations(self) -> list[dict[str, Any]]:
        answer = await self.get("/api/v1/billing/account/operations")
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    async def notifications(self) -> list[dict[str, Any]]:
        answer = await self.get("/api/v1/notifications")
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    async def place_order(self, items: list[dict[str, Any]], key: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        body = {"items": items, "delivery": {"address": "Tverskaya 1, Moscow", "lat": 55.757, "lon": 37.615}}
        return await self.post("/api/v1/order", json=body, headers=headers)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 20.0, interval: float = 0.2
) -> None:
    """Wait until an asynchronous effect (an event consumed, a letter sent) has happened."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def order_status(customer: Api, order_id: str) -> str | None:
    answer = await customer.get(f"/api/v1/orders/{order_id}")
    return str(answer.json()["status"]) if answer.status_code == 200 else None


async def wait_for_status(customer: Api, order_id: str, status: str, timeout: float = 20.0) -> dict[str, Any]:
    """The order once the read model shows `status`."""

    async def reached() -> bool:
        return await order_status(customer, order_id) == status

    await eventually(reached, timeout=timeout, interval=0.1)
    answer = await customer.get(f"/api/v1/orders/{order_id}")
    order: dict[str, Any] = answer.json()
    return order
