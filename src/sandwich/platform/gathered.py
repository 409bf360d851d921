"""Records that are safe to write a moment late, gathered and written by one statement.

Only for writes that note work already done and are redone harmlessly when lost: the outbox
relay's "published" marks (a lost mark publishes its event again, and every consumer drops the
repeat through its inbox). Writing each as it happened cost a transaction and a WAL flush apiece:
at 70 orders/s the marks were half of the `orders` service's transactions, and the commits behind
them waited for the disk too. Gathered for a tenth of a second, they are one statement per tenth
of a second whatever the rate. (Not for the letters' "sent": a letter sent again reaches a real
recipient twice, so that record stays as close to the send as it can be.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger("gathered")

T = TypeVar("T")

LINGER_SECONDS = 0.1
"""How long ids are gathered before they are written (well inside the outbox's grace for unmarked
rows, UNMARKED_GRACE_SECONDS)."""
RETRY_SECONDS = 0.5
STOP_TIMEOUT_SECONDS = 2.0


class GatheredWrites(Generic[T]):
    """Ids added from anywhere, written in batches by `write` in a task of their own.

    A failed write keeps its ids for the next one; a clean stop writes what is still waiting. Ids
    a crash loses were only a record of work already done (see the module's doc).
    """

    def __init__(
        self,
        name: str,
        write: Callable[[list[T]], Awaitable[None]],
        *,
        linger_seconds: float = LINGER_SECONDS,
    ):
        self.name = name
        self._write = write
        self.linger_seconds = linger_seconds
        self._waiting: list[T] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, ids: Iterable[T]) -> None:
        self._waiting.extend(ids)
        if self._waiting:
            self._wake.set()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"gathered-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Write what is waiting now (a clean stop); a failure leaves it to the redo (see the doc)."""
        ids, self._waiting = self._waiting, []
        if not ids:
            return
        try:
            async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
                await self._write(ids)
        except Exception as exc:
            log.warning("gathered_write_failed", what=self.name, error=repr(exc), ids=len(ids))

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.linger_seconds)
            self._wake.clear()
            ids, self._waiting = self._waiting, []
            if not ids:
                continue
            try:
                await self._write(ids)
            except asyncio.CancelledError:
                self._waiting = ids + self._waiting  # stopping: flush() writes them
                raise
            except Exception as exc:
                log.warning("gathered_write_failed", what=self.name, error=repr(exc), ids=len(ids))
                self._waiting = ids + self._waiting
                await asyncio.sleep(RETRY_SECONDS)
                self._wake.set()
