"""Transactional outbox: events are written with the state change that caused them, then relayed.

`add_event` runs inside the caller's transaction, so a rolled-back change publishes nothing. The
relay publishes committed rows in id order (per-key order is kept) and marks them only after the
broker acknowledged them; while the broker is down rows simply wait, and a failed row is retried
on every pass (never dropped, unlike eShop's failed entries).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import UTC, datetime

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from sandwich.platform.bus.base import BusUnavailable, EventBus
from sandwich.platform.db import Database
from sandwich.platform.events import Envelope
from sandwich.platform.observability import EVENTS_PUBLISHED, OUTBOX_LAG

log = structlog.get_logger("outbox")

_INSERT = text(
    "INSERT INTO outbox (event_id, topic, key, envelope) VALUES (:event_id, :topic, :key, :envelope)"
)
_PENDING = text(
    "SELECT id, topic, key, envelope, created_at FROM outbox WHERE published_at IS NULL "
    "ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED"
)
_MARK = text("UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY(:ids)")
_FAIL = text("UPDATE outbox SET attempts = attempts + 1, last_error = :error WHERE id = :id")


async def add_event(conn: AsyncConnection, topic: str, envelope: Envelope) -> None:
    """Record an event in the caller's transaction; the relay publishes it after commit."""
    await conn.execute(
        _INSERT,
        {
            "event_id": uuid.UUID(envelope.event_id),
            "topic": topic,
            "key": envelope.key,
            "envelope": envelope.to_bytes(),
        },
    )


class OutboxRelay:
    """Publishes committed outbox rows; woken right after a commit, and polling as a safety net."""

    def __init__(
        self, db: Database, bus: EventBus, service: str, *, batch_size: int = 200, poll_seconds: float = 0.5
    ):
        self.db = db
        self.bus = bus
        self.service = service
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._backoff = 0.0

    def notify(self) -> None:
        """Called after a transaction that added events committed: publish now, not at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self.service}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds + self._backoff)
            self._wake.clear()
            try:
                while await self.publish_pending_events() == self.batch_size:
                    pass
                self._backoff = 0.0
            except BusUnavailable as exc:
                self._backoff = min(5.0, max(0.2, self._backoff * 2))
                log.warning("outbox_broker_unavailable", error=str(exc), retry_in=self._backoff)
            except Exception as exc:
                self._backoff = min(5.0, max(0.2, self._backoff * 2))
                log.error("outbox_relay_failed", error=repr(exc))

    async def publish_pending_events(self) -> int:
        """Publish one batch in id order; returns how many rows were published."""
        async with self.db.begin() as conn:
            rows = (await conn.execute(_PENDING, {"limit": self.batch_size})).all()
            if not rows:
                return 0
            published: list[int] = []
            failure: BusUnavailable | None = None
            for row in rows:
                try:
                    await self.bus.publish(row.topic, row.key, bytes(row.envelope))
                except BusUnavailable as exc:
                    await conn.execute(_FAIL, {"id": row.id, "error": str(exc)[:500]})
                    failure = exc
                    break
                published.append(row.id)
                OUTBOX_LAG.labels(self.service).observe(
                    max(0.0, time.time() - row.created_at.astimezone(UTC).timestamp())
                )
            if published:
                await conn.execute(_MARK, {"ids": published})
                EVENTS_PUBLISHED.labels(self.service).inc(len(published))
        if failure is not None:
            raise failure
        return len(published)


async def pending_count(db: Database) -> int:
    async with db.connect() as conn:
        return int(
            (await conn.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))).scalar_one()
        )


def now_utc() -> datetime:
    return datetime.now(UTC)
