"""The service-to-service client against a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from sandwich.platform.http import ServiceClient
from sandwich.platform.settings import Settings, service_url_env


async def test_calls_queued_behind_the_pool_limit_wait_for_a_connection_instead_of_failing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """150 calls at once to a peer that takes 1.2 s: the pool lends 100 connections per peer, so 50
    calls wait 1.2 s for one. That wait is not a connect timeout (1 s): they all succeed, within the
    calls' total timeout, and the peer's breaker stays closed."""
    in_flight = 0
    most = 0

    async def slow(_: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(1.2)
        in_flight -= 1
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    monkeypatch.setenv(service_url_env("billing"), f"http://127.0.0.1:{port}")
    monkeypatch.setenv("SANDWICH_HTTP_TIMEOUT", "5")
    client = ServiceClient(Settings(), retry_attempts=1)
    try:
        began = time.monotonic()
        answers = await asyncio.gather(*(client.request("billing", "GET", "/slow") for _ in range(150)))
        took = time.monotonic() - began
    finally:
        await client.close()
        await runner.cleanup()
    assert [a.status for a in answers] == [200] * 150
    assert most == 100  # the pool's limit per peer held
    assert 2.3 < took < 5.0  # two rounds of 1.2 s
    assert not client.breaker("billing").is_open
