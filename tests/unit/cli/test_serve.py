"""The ASGI server setting and the shutdown's cancelling of requests still under way."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sandwich.cli.serve import InFlightRequests
from sandwich.platform.settings import AsgiServer, Settings

pytestmark = pytest.mark.unit


def test_the_asgi_server_is_uvicorn_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SANDWICH_ASGI_SERVER", raising=False)
    assert Settings().asgi_server is AsgiServer.UVICORN
    monkeypatch.setenv("SANDWICH_ASGI_SERVER", " Granian ")
    assert Settings().asgi_server is AsgiServer.GRANIAN


def test_an_unknown_asgi_server_names_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDWICH_ASGI_SERVER", "hypercorn")
    with pytest.raises(ValueError, match="one of uvicorn, granian"):
        Settings()


async def _receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


async def _send(message: dict[str, Any]) -> None:
    return None


async def test_cancel_ends_the_requests_under_way_without_an_error() -> None:
    started = asyncio.Event()

    async def endless(scope: dict[str, Any], receive: Any, send: Any) -> None:
        started.set()
        await asyncio.Event().wait()  # an event stream nobody ends

    in_flight = InFlightRequests(endless)
    request = asyncio.create_task(in_flight({"type": "http"}, _receive, _send))
    await started.wait()
    assert in_flight.cancel() == 1
    await asyncio.wait_for(request, 1.0)  # returns: the shutdown's cancel is not the app's error
    assert not request.cancelled() and request.exception() is None
    assert in_flight.tasks == set()


async def test_a_cancel_not_from_the_shutdown_still_cancels() -> None:
    started = asyncio.Event()

    async def endless(scope: dict[str, Any], receive: Any, send: Any) -> None:
        started.set()
        await asyncio.Event().wait()

    in_flight = InFlightRequests(endless)
    request = asyncio.create_task(in_flight({"type": "http"}, _receive, _send))
    await started.wait()
    request.cancel()  # e.g. the server dropping a request whose client went away
    with pytest.raises(asyncio.CancelledError):
        await request
    assert in_flight.tasks == set()


async def test_lifespan_is_passed_through_and_not_tracked() -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    in_flight = InFlightRequests(app)
    await in_flight({"type": "lifespan"}, _receive, _send)
    assert seen == ["lifespan"] and in_flight.cancel() == 0
