"""Customers registered, logged in and funded before a phase, and the menu item they order.

Every step waits out what a running platform may answer on the way (the gateway's login and
register throttles, an account the async flow opens a moment after the user exists), so that a
benchmark fails only when the platform really cannot be prepared (`SetupError`)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandwich.bench.client import Answer, Http, HttpError

PASSWORD = "bench-password-1"


@dataclass
class Customer:
    index: int
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class SetupError(RuntimeError):
    """Customers or the menu item could not be prepared: the benchmark cannot run."""


async def _post_json(client: Http, path: str, body: Any, **kwargs: Any) -> Answer:
    return await client.post(path, json=body, **kwargs)


async def login(client: Http, username: str, password: str, *, timeout: float = 60.0) -> str:
    """Log in, waiting out the gateway's login throttle (429 + Retry-After) if it is on."""
    deadline = time.monotonic() + timeout
    while True:
        answer = await _post_json(client, "/api/v1/auth/login", {"username": username, "password": password})
        if answer.status_code == 200:
            return str(answer.json()["access_token"])
        if answer.status_code in (401, 429, 502, 503) and time.monotonic() < deadline:
            wait = float(answer.headers.get("Retry-After", "0.3") or 0.3)
            await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))
            continue
        raise SetupError(f"login of {username} failed: {answer.status_code} {answer.text[:200]}")


async def _register(client: Http, username: str, *, timeout: float = 600.0) -> Answer:
    """Register, waiting out the gateway's register throttle (429 + Retry-After, per client address,
    SANDWICH_REGISTER_RATE a minute) if it is on: a platform the bench did not start has it on."""
    deadline = time.monotonic() + timeout
    while True:
        answer = await _post_json(
            client,
            "/api/v1/auth/register",
            {"username": username, "password": PASSWORD, "email": f"{username}@bench.example.com"},
        )
        if answer.status_code != 429 or time.monotonic() >= deadline:
            return answer
        wait = float(answer.headers.get("Retry-After", "1") or 1)
        await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))


async def register_customer(
    client: Http, index: int, prefix: str, deposit: int, *, retries: int = 5
) -> Customer:
    """Register, log in and fund one customer (deposit with an Idempotency-Key, so a retry is safe)."""
    username = f"{prefix}{index:05d}"
    for attempt in range(retries):
        try:
            answer = await _register(client, username)
            if answer.status_code not in (201, 409):  # 409: an earlier attempt got through
                raise SetupError(f"register {username}: {answer.status_code} {answer.text[:200]}")
            token = await login(client, username, PASSWORD)
            customer = Customer(index, username, token)
            if deposit:
                await _deposit(client, customer, deposit, key=f"{username}-funding")
            return customer
        except (*HttpError, SetupError):
            if attempt == retries - 1:
                raise
            await asyncio.sleep(0.5 * 2**attempt)
    raise SetupError(f"could not set up {username}")  # pragma: no cover


async def _deposit(client: Http, customer: Customer, amount: int, key: str) -> None:
    # In the async flow the account is opened from the UserCreated event: allow it a moment.
    deadline = time.monotonic() + 15.0
    while True:
        answer = await _post_json(
            client,
            "/api/v1/billing/account/deposit",
            {"amount": amount},
            headers={**customer.headers, "Idempotency-Key": key},
        )
        if answer.status_code == 201:
            return
        if time.monotonic() > deadline or answer.status_code not in (404, 409, 502, 503):
            raise SetupError(f"deposit of {customer.username}: {answer.status_code} {answer.text[:200]}")
        await asyncio.sleep(0.2)


async def setup_customers(
    client: Http,
    count: int,
    *,
    deposit: int,
    parallel: int = 16,
    prefix: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[Customer]:
    """`count` new customers, registered, logged in and funded, `parallel` at a time."""
    prefix = prefix or f"bench{secrets.token_hex(3)}x"
    semaphore = asyncio.Semaphore(parallel)
    done = 0

    async def one(index: int) -> Customer:
        nonlocal done
        async with semaphore:
            customer = await register_customer(client, index, prefix, deposit)
        done += 1
        if on_progress is not None:
            on_progress(done, count)
        return customer

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def create_menu_item(client: Http, admin_token: str, price: int) -> str:
    """A menu item of the benchmark's own, made of ingredients no food point stocks: its orders stay
    `paid` (the kitchen cannot assign them), so the benchmark measures ordering and paying only."""
    tag = secrets.token_hex(4)
    answer = await _post_json(
        client,
        "/api/v1/admin/menu",
        {
            "name": f"Bench sandwich {tag}",
            "price": price,
            "ingredients": [
                {"name": f"bench-bread-{tag}", "quantity": 2},
                {"name": f"bench-ham-{tag}", "quantity": 1},
            ],
        },
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    if answer.status_code != 201:
        raise SetupError(f"creating the bench menu item: {answer.status_code} {answer.text[:200]}")
    return str(answer.json()["id"])


async def first_menu_item(client: Http, token: str) -> tuple[str, int]:
    answer = await client.get("/api/v1/menu", headers={"Authorization": f"Bearer {token}"})
    if answer.status_code != 200 or not answer.json().get("items"):
        raise SetupError("the menu is empty and no admin was given to create a bench item")
    item = answer.json()["items"][0]
    return str(item["id"]), int(item["price"])
