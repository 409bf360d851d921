"""PostgreSQL NOTIFYs sent once the work that calls for them has committed, outside its transaction.

Why not `pg_notify()` inside the transaction, which is where NOTIFY is usually put: a transaction
that NOTIFYs takes one lock for the whole server at commit (PreCommit_Notify, so that notifications
queue in commit order) and holds it until its commit is on disk. Every such commit then waits for
the flush of the one before it, instead of sharing one flush with the commits beside it; on this
platform the read model (every status change of every order) and the kitchen (every paid order)
did it, and while the disk was slow the benchmark saw up to 51 backends of the two waiting for
that lock at once (pg_stat_activity: wait event `Lock`/`object`).

Here a notification is only a wake-up (its listeners read the database for what changed, and look
again on a timer as well), so it can go a moment after the commit: those waiting are gathered and
sent by one statement, in autocommit with synchronous_commit off for its own transaction, so the
lock is held for microseconds and never across a flush. Still never for a change that was rolled
back: `Database.begin()` drops the notifications of a block that raised. One lost in a crash
between the commit and the send costs a listener the wait for its timer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence

import structlog
from sqlalchemy import text

log = structlog.get_logger("pg_notify")

Notification = tuple[str, str]
"""(channel, payload)."""
Send = Callable[[Sequence[Notification]], Awaitable[None]]

MAX_WAITING = 10_000
"""Notifications kept while the server is away; the oldest go first (their listeners' timers
cover them)."""
BATCH = 500
RETRY_SECONDS = 0.5
CLOSE_SECONDS = 2.0

SEND_STATEMENT = text(
    # set_config(..., true) lasts for the statement's own transaction, and a commit reads the
    # setting before the transaction's settings are undone.
    "SELECT pg_notify(t.c, t.p) FROM (SELECT set_config('synchronous_commit', 'off', true)) AS s, "
    "unnest(CAST(:channels AS text[]), CAST(:payloads AS text[])) WITH ORDINALITY AS t(c, p, n) ORDER BY t.n"
)
"""One round trip for a batch, run in autocommit (`Database.connect()`), in the batch's order."""


class Notifier:
    """Sends the notifications handed to `send`, in order, by one task through `deliver`
    (`Database` gives it a pooled connection and SEND_STATEMENT).

    Equal notifications waiting at the same time go once (PostgreSQL would fold them in one
    transaction anyway): a burst of "wake up" to one channel costs one.
    """

    def __init__(self, deliver: Send):
        self._deliver = deliver
        self._waiting: dict[Notification, None] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def send(self, notifications: Iterable[Notification]) -> None:
        """Queue notifications of committed work; they go out as soon as the task gets to them."""
        self._waiting.update(dict.fromkeys(notifications))
        if not self._waiting:
            return
        while len(self._waiting) > MAX_WAITING:
            del self._waiting[next(iter(self._waiting))]
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="pg-notifier")

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                if not await self._send_some():
                    await asyncio.sleep(RETRY_SECONDS)

    async def _send_some(self) -> bool:
        batch = list(self._waiting)[:BATCH]
        try:
            await self._deliver(batch)
        except Exception as exc:
            # Anything: the task must outlive what a connection does (one whose backend was
            # terminated raised asyncpg's InternalClientError, not an InterfaceError).
            log.warning("notify_failed", waiting=len(self._waiting), error=repr(exc), retry_in=RETRY_SECONDS)
            return False
        for notification in batch:
            self._waiting.pop(notification, None)
        return True

    async def close(self) -> None:
        """Send what waits (for up to CLOSE_SECONDS), then stop."""
        task = self._task
        if task is None:
            return
        # The task stays in place meanwhile: a send now must not start a second one.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drain(), CLOSE_SECONDS)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self._task = None

    async def _drain(self) -> None:
        while self._waiting:
            await asyncio.sleep(0.01)
