"""Live status changes of orders: GET /api/v1/orders/{id}/events as Server-Sent Events.

Any order_info instance may apply an event, and a client may be streaming from any other, so the news
travels through the database they share: a view change NOTIFYs `<order_id>:<version>:<status>` once
it has committed (storage.py, `Connection.notify`), and every process keeps one LISTEN connection
(`LiveOrders`, opened on the first stream) that hands each notification to the in-process queues of the streams
following that order.

A notification is only a wake-up: a stream then reads the order's history after the last version it
sent, from the database. So a notification lost while the listener reconnects, or one that arrives
before the stream has read its starting point, costs nothing but a moment; and as a safety net a
stream also looks again at every heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import structlog

from sandwich.services.order_info import storage
from sandwich.services.order_info.domain import TERMINAL_STATUSES, HistoryEntry, rfc3339
from sandwich.services.order_info.unit_of_work import OrderInfoUnitOfWork

log = structlog.get_logger("order_info.live")

HEARTBEAT_SECONDS = 15.0
KEEP_ALIVE = b": keep-alive\n\n"


@dataclass(frozen=True)
class StatusChange:
    """One NOTIFY of the status channel, parsed."""

    order_id: str
    version: int
    status: str

    @classmethod
    def parse(cls, payload: str) -> StatusChange | None:
        order_id, _, rest = payload.partition(":")
        version, _, status = rest.partition(":")
        try:
            return cls(str(uuid.UUID(order_id)), int(version), status)
        except ValueError:
            return None


# What a stream's queue carries: a change of its order, or None for "notifications may have been
# missed, look again" (the listener (re)connected).
Wake = StatusChange | None
Spawn = Callable[[Coroutine[Any, Any, None], str], None]


class LiveOrders:
    """The process's one LISTEN connection and the queues of the streams that follow orders.

    `dsn` is a plain postgresql:// URL of the order_info database. The listener starts with the first
    subscription and runs until the process stops; `spawn` runs it as one of the service's background
    tasks (cancelled at shutdown), or as a task of its own when None (tests: call `close()`).
    """

    def __init__(self, dsn: str, *, spawn: Spawn | None = None, queue_size: int = 64) -> None:
        self.dsn = dsn
        self.queue_size = queue_size
        self._spawn = spawn
        self._queues: dict[str, set[asyncio.Queue[Wake]]] = {}
        self._listening = asyncio.Event()
        self._started = False
        self._task: asyncio.Task[None] | None = None

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    def subscribers(self, order_id: str | None = None) -> int:
        if order_id is not None:
            return len(self._queues.get(order_id, ()))
        return sum(len(queues) for queues in self._queues.values())

    @contextlib.asynccontextmanager
    async def subscribe(
        self, order_id: str, *, wait_seconds: float = 5.0
    ) -> AsyncIterator[asyncio.Queue[Wake]]:
        """A queue of the order's changes for as long as the block runs; freed when it ends.

        Waits (up to `wait_seconds`) until the listener is listening, so that whatever the caller
        reads from the database afterwards cannot miss a change; if the database is away the caller
        goes on, and the queue gets a None once the listener is back.
        """
        queue: asyncio.Queue[Wake] = asyncio.Queue(self.queue_size)
        key = str(uuid.UUID(order_id))
        self._queues.setdefault(key, set()).add(queue)
        try:
            self._start()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listening.wait(), wait_seconds)
            yield queue
        finally:
            queues = self._queues.get(key)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._queues[key]

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        if self._spawn is not None:
            self._spawn(self._listen(), "order-info-live-listener")
        else:
            self._task = asyncio.create_task(self._listen(), name="order-info-live-listener")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen(self) -> None:
        """LISTEN on one connection; reconnect with backoff when it is lost."""
        delay = 0.2
        reconnect = False
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.dsn, timeout=5.0)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(storage.STATUS_CHANNEL, self._on_notify)
                self._listening.set()
                if reconnect:
                    self._wake_all()  # whatever happened while we were not listening: look again
                log.info("order_status_listening", channel=storage.STATUS_CHANNEL)
                delay = 0.2
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), 30.0)
                    if not lost.is_set():
                        # A server that vanished without closing the socket is noticed here.
                        await conn.execute("SELECT 1", timeout=5.0)
                log.warning("order_status_listener_lost")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("order_status_listener_failed", error=repr(exc), retry_in=delay)
            finally:
                self._listening.clear()
                reconnect = True
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(5.0, delay * 2)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        change = StatusChange.parse(payload)
        if change is None:
            log.warning("order_status_notification_malformed", payload=payload[:200])
            return
        for queue in self._queues.get(change.order_id, ()):
            self._put(queue, change)

    def _wake_all(self) -> None:
        for queues in self._queues.values():
            for queue in queues:
                self._put(queue, None)

    @staticmethod
    def _put(queue: asyncio.Queue[Wake], wake: Wake) -> None:
        # A full queue already holds wake-ups its stream has not seen: it will read the database anyway.
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(wake)


def status_event(order_id: str, entry: HistoryEntry) -> bytes:
    """One SSE event: `event: status`, the version as its id, the status change as JSON data."""
    data = orjson.dumps(
        {"order_id": order_id, "status": entry.status, "version": entry.version, "at": rfc3339(entry.at)}
    )
    return b"event: status\nid: %d\ndata: %s\n\n" % (entry.version, data)


async def status_events(
    uow: OrderInfoUnitOfWork,
    live: LiveOrders,
    order_id: uuid.UUID,
    last_event_id: int | None = None,
    *,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
) -> AsyncIterator[bytes]:
    """The SSE body: the current state (or, after `last_event_id`, every change since), then each
    change as it is applied, a keep-alive comment when idle, and the end after a terminal status.

    Versions only go up within a stream: an older version that reaches the read model late (it fills
    a gap in the history, the view does not move back) is not sent. When the read model has not seen
    the order yet, the stream starts when it does. Each look is a statement of its own on a pooled
    connection, none held while the stream waits.
    """
    key = str(order_id)
    step = uow.statements()
    sent = last_event_id  # the highest version the client has; None: it wants the current state
    async with live.subscribe(key) as queue:
        while True:
            async with step:
                if sent is None:
                    current = await step.views.current_status(order_id)
                    entries = [current[1]] if current else []
                else:
                    entries = await step.views.history_after(order_id, sent)
            for entry in entries:
                yield status_event(key, entry)
                sent = entry.version
                if entry.status in TERMINAL_STATUSES:
                    return
            if not await _next_wake(queue, sent, heartbeat_seconds):
                yield KEEP_ALIVE


async def _next_wake(queue: asyncio.Queue[Wake], sent: int | None, seconds: float) -> bool:
    """Wait for news newer than `sent`; False when `seconds` passed without any (time to keep alive)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        try:
            wake = await asyncio.wait_for(queue.get(), remaining)
        except TimeoutError:
            return False
        if wake is None or sent is None or wake.version > sent:
            # Take what else is queued along with it: one read of the database covers it all.
            while not queue.empty():
                queue.get_nowait()
            return True
