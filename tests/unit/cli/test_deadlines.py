"""uvicorn with the read deadlines of cli/deadlines.py: a slow client is cut off."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from sandwich.cli import deadlines
from sandwich.cli.deadlines import DeadlineHttpToolsProtocol

pytestmark = pytest.mark.unit


class QuickDeadlines(DeadlineHttpToolsProtocol):
    head_seconds = 0.5
    body_idle_seconds = 0.5
    body_total_seconds = 2.0


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def server() -> AsyncIterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        echo, host="127.0.0.1", port=port, http=QuickDeadlines, lifespan="off", log_level="error"
    )
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve())
    while not running.started:
        await asyncio.sleep(0.01)
    yield port
    running.should_exit = True
    await task


async def _closed_after(port: int, sent: list[bytes], pause: float = 0.0) -> tuple[float, bytes]:
    """Send the parts (pausing between them), then wait for the server to close; (seconds, answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    for part in sent:
        try:
            writer.write(part)
            await writer.drain()
        except ConnectionError:
            break  # closed by the server while we were still sending
        await asyncio.sleep(pause)
    try:
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    except ConnectionError:
        answer = b""  # reset rather than closed: cut off all the same
    writer.close()
    return time.monotonic() - started, answer


async def test_trickled_headers_are_cut_off(server: int) -> None:
    seconds, answer = await _closed_after(server, [b"GET / HTTP/1.1\r\n", b"Host: x\r\n", b"X-A: 1\r\n"], 0.2)
    assert seconds < 1.5 and answer.startswith(b"HTTP/1.1 408")


async def test_a_silent_connection_is_cut_off(server: int) -> None:
    seconds, answer = await _closed_after(server, [])
    assert seconds < 1.5 and answer.startswith(b"HTTP/1.1 408")


async def test_a_body_that_stops_halfway_is_cut_off(server: int) -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    seconds, _ = await _closed_after(server, [head + b"0123456789"])
    assert seconds < 1.5


async def test_a_trickled_body_is_cut_off_at_the_total_deadline(server: int) -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    seconds, _ = await _closed_after(server, [head, *([b"x"] * 20)], pause=0.3)
    assert seconds < 3.5


async def test_a_prompt_client_keeps_its_connection_for_the_next_request(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    for _ in range(2):
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        await writer.drain()
        answer = await asyncio.wait_for(reader.readuntil(b"hi"), timeout=5)
        assert answer.startswith(b"HTTP/1.1 200")
        await asyncio.sleep(0.8)  # idle between requests longer than the head deadline: keep-alive's business
    writer.close()


async def test_body_deadline_answers_408_for_a_stalled_body_and_drops_the_apps_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(deadlines, "BODY_IDLE_SECONDS", 0.2)
    sent: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = [{"type": "http.request", "body": b"0123456789", "more_body": True}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)
        raise AssertionError("never")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def reads_the_body(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        raise RuntimeError("client disconnected")  # what starlette raises reading on

    began = time.monotonic()
    await deadlines.BodyDeadline(reads_the_body)({"type": "http"}, receive, send)
    assert time.monotonic() - began < 1.0
    assert sent[0]["status"] == 408 and len(sent) == 2


async def test_body_deadline_leaves_receive_alone_once_the_body_is_complete(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(deadlines, "BODY_IDLE_SECONDS", 0.1)
    messages: list[dict[str, Any]] = [
        {"type": "http.disconnect"},
        {"type": "http.request", "body": b"", "more_body": False},
    ]

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.3 if len(messages) == 1 else 0)  # the client leaves an event stream later
        return messages.pop()

    seen: list[str] = []

    async def follows(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append((await receive())["type"])
        seen.append((await receive())["type"])

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError("nothing is sent")

    began = time.monotonic()
    await deadlines.BodyDeadline(follows)({"type": "http"}, receive, send)
    assert seen == ["http.request", "http.disconnect"] and time.monotonic() - began >= 0.3
