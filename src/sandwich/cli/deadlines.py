"""Read deadlines for uvicorn's HTTP/1.1 protocol (httptools): a slow client is cut off.

uvicorn has a keep-alive timeout between requests, but none while it reads a request: a client
that trickles its request line and headers, or stops halfway through its body, held a socket (and,
for a body, a request task) for as long as it liked. This protocol adds three deadlines:

- the request head (request line and headers) must arrive within HEAD_SECONDS of the connection
  being made, or of the first byte of a later request on a kept-alive connection;
- a body must keep arriving: no more than BODY_IDLE_SECONDS between two of its chunks;
- and all of it within BODY_TOTAL_SECONDS of the head.

A connection that misses one is answered 408 (when no response has started) and closed; the app,
if it was reading the body, sees the client disconnect.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_SECONDS = 10.0
BODY_IDLE_SECONDS = 5.0
BODY_TOTAL_SECONDS = 30.0
_TIMEOUT_BODY = b'{"error": {"code": "request_timeout", "message": "The request came too slowly."}}'
TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + f"content-length: {len(_TIMEOUT_BODY)}\r\n\r\n".encode()
    + _TIMEOUT_BODY
)


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines on reading the request head and body."""

    head_seconds = HEAD_SECONDS
    body_idle_seconds = BODY_IDLE_SECONDS
    body_total_seconds = BODY_TOTAL_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._body_until = 0.0

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport is None or self.transport.is_closing():
            return
        cycle = self.cycle
        reading_body = cycle is not None and not cycle.response_complete and cycle.more_body
        if cycle is not None and not cycle.response_complete and not reading_body:
            # A request is being served (a pipelined head waits behind it): not the client's delay.
            self._arm(self.head_seconds)
            return
        if cycle is None or not cycle.response_started:
            self.transport.write(TIMEOUT_RESPONSE)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.head_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:
            self._arm(self.head_seconds)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._body_until = self.loop.time() + self.body_total_seconds
        self._arm(min(self.body_idle_seconds, self.body_total_seconds))

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._arm(max(0.0, min(self.body_idle_seconds, self._body_until - self.loop.time())))

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()


class BodyDeadline:
    """ASGI middleware for servers without a body deadline of their own (granian, whose own
    header-read timeout covers the head): a request body that stalls for BODY_IDLE_SECONDS, or is
    not complete BODY_TOTAL_SECONDS after the head, is answered 408 and reads as the client's
    disconnect to the app (whose own answer, and the error it raises reading on, are dropped).
    Only the body is timed: once it is complete, `receive` is the server's own (an event stream
    waits on it for the client's disconnect for minutes)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        until = loop.time() + BODY_TOTAL_SECONDS
        body_done = False
        started = False
        timed_out = False

        async def receive_in_time() -> Any:
            nonlocal body_done, timed_out
            if body_done or timed_out:
                return await receive() if not timed_out else {"type": "http.disconnect"}
            try:
                message = await asyncio.wait_for(
                    receive(), max(0.0, min(BODY_IDLE_SECONDS, until - loop.time()))
                )
            except TimeoutError:
                timed_out = True
                if not started:
                    await send_timeout()
                return {"type": "http.disconnect"}
            if message.get("type") != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def send_timeout() -> None:
            nonlocal started
            started = True
            await send(
                {
                    "type": "http.response.start",
                    "status": 408,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
                }
            )
            await send({"type": "http.response.body", "body": _TIMEOUT_BODY})

        async def send_unless_timed_out(message: Any) -> None:
            nonlocal started
            if timed_out:
                return
            if message.get("type") == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive_in_time, send_unless_timed_out)
        except Exception:
            if not timed_out:
                raise
