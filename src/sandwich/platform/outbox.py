"""Transactional outbox: events are written with the state change that caused them, then relayed.

`add_events` runs inside the caller's transaction (the unit of work calls it at its commit), so a rolled-back change publishes nothing. The
relay publishes committed rows in id order (per-key order is kept) and marks them only after the
broker acknowledged them; while the broker is down rows simply wait, and a failed row is retried
on every pass (never dropped, unlike eShop's failed entries).

A committer that knows its rows (their ids come back from the statement that wrote them) hands them
to the relay after the commit (`hand_over`): the relay publishes them from memory, in id order, and
records them as published in the background, so an event's way to the broker has no database round
trip in it (looking the rows up again was most of the commit-to-publish time under load). Rows
nobody handed over (another instance's, a crashed process's, any written by a committer that only
calls `notify`) are looked up as before, and after a failed publish the relay looks everything up
until the outbox is drained, so that nothing jumps the queue of what is waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import structlog
from sqlalchemy import text

from sandwich.platform.bus.base import BusUnavailable, EventBus, Outgoing
from sandwich.platform.db import Database
from sandwich.platform.events import Envelope
from sandwich.platform.gathered import LINGER_SECONDS, GatheredWrites
from sandwich.platform.observability import EVENTS_PUBLISHED, OUTBOX_LAG
from sandwich.platform.sql import Connection, Row
from sandwich.platform.tracing import ProducerSpans, exporting_now

log = structlog.get_logger("outbox")

OUTBOX_ROWS = (
    "INSERT INTO outbox (event_id, topic, key, envelope, kind) "
    "SELECT * FROM unnest(CAST(:outbox_ids AS uuid[]), CAST(:outbox_topics AS text[]), "
    "CAST(:outbox_keys AS text[]), CAST(:outbox_envelopes AS bytea[]), CAST(:outbox_kinds AS text[]))"
)
"""The outbox rows of a list of events (`outbox_params`), in order: a statement of its own, or a
data-modifying CTE of the statement that makes the change (`... WHERE EXISTS (SELECT 1 FROM moved)`),
so that a change and its events are one round trip."""
OUTBOX_ROW_IDS = "(SELECT array_agg(id ORDER BY id) FROM {cte}) AS outbox_row_ids"
"""A final-SELECT expression giving the ids of the rows a `{cte} AS (OUTBOX_ROWS ... RETURNING id)`
wrote, in order (for `committed`)."""
_INSERT = text(OUTBOX_ROWS)
_PENDING = text(
    "SELECT id, event_id, topic, key, envelope, kind, created_at FROM outbox WHERE published_at IS NULL "
    "AND created_at <= clock_timestamp() - make_interval(secs => :min_age) "
    "ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED"
)
# One aggregate's events, oldest first (read without locks: see publish_events_of).
_PENDING_OF_KEY = text(
    "SELECT id, event_id, topic, key, envelope, kind, created_at FROM outbox "
    "WHERE published_at IS NULL AND key = :key "
    "ORDER BY id LIMIT :limit"
)
_MARK = text(
    "UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY(:ids) AND published_at IS NULL"
)
UNMARKED_GRACE_SECONDS = 2.0
"""How old an unpublished row must be before the poll takes it (rows handed over are published from
memory and marked a moment later)."""
HANDED_OVER_MAX = 10_000
"""Rows kept in memory for the relay at most; beyond that it looks them up (a broker that is slow)."""
_FAIL = text("UPDATE outbox SET attempts = attempts + 1, last_error = :error WHERE id = :id")


class Event(NamedTuple):
    """An event to record: its topic, its envelope and its kind (Outgoing.kind: an order's status)."""

    topic: str
    envelope: Envelope
    kind: str = ""


def outbox_params(events: Sequence[Event]) -> dict[str, list[Any]]:
    """The parameters of OUTBOX_ROWS for `events`."""
    return {
        "outbox_ids": [uuid.UUID(event.envelope.event_id) for event in events],
        "outbox_topics": [event.topic for event in events],
        "outbox_keys": [event.envelope.key for event in events],
        "outbox_envelopes": [event.envelope.to_bytes() for event in events],
        "outbox_kinds": [event.kind or None for event in events],
    }


@dataclass(frozen=True)
class Committed:
    """An outbox row whose transaction committed, handed to the relay (OutboxRelay.hand_over)."""

    id: int
    event: Event
    at: float  # time.time() of the hand-over: the commit, for the publish-lag metric


def committed(row_ids: Sequence[int] | None, events: Sequence[Event]) -> list[Committed]:
    """The rows a statement wrote (ids from OUTBOX_ROW_IDS, in order) paired with their events."""
    ids = list(row_ids or ())
    if len(ids) != len(events):
        return []  # not what was written: let the relay look them up
    now = time.time()
    return [Committed(row_id, event, now) for row_id, event in zip(ids, events, strict=True)]


async def add_events(conn: Connection, events: Sequence[Event]) -> None:
    """Record events in the caller's transaction; the relay publishes them after commit."""
    if events:
        await conn.execute(_INSERT, outbox_params(events))


class OutboxRelay:
    """Publishes committed outbox rows; woken right after a commit, and polling as a safety net."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        service: str,
        *,
        batch_size: int = 200,
        poll_seconds: float = 0.5,
        min_age_seconds: float = 0.0,
        mark_linger_seconds: float = LINGER_SECONDS,
    ):
        self.db = db
        self.bus = bus
        self.service = service
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        # In `sync` the request that committed an event pushes it itself; the relay is only the
        # safety net for pushes that failed, so it leaves fresh rows to their requests.
        self.min_age_seconds = min_age_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._backoff = 0.0
        self._handed: list[Committed] = []
        # Look the outbox up on the next pass: rows were committed without being handed over, or
        # a publish failed and what waits must go out in order before anything handed over.
        self._look_up = True
        self._last_look = 0.0
        # What was published from memory is recorded a moment later, many rows per statement.
        self._marks = GatheredWrites(
            f"outbox-marks-{service}", self._mark, linger_seconds=mark_linger_seconds
        )

    def notify(self) -> None:
        """Called after a transaction that added events committed: publish now, not at the next poll."""
        self._look_up = True
        self._wake.set()

    def hand_over(self, rows: Sequence[Committed]) -> None:
        """Called after the transaction that wrote `rows` committed: publish them without a lookup."""
        if not rows:
            return
        if self._look_up or len(self._handed) >= HANDED_OVER_MAX:
            self._look_up = True  # the next lookup finds them, in their place in the queue
        else:
            self._handed.extend(rows)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self.service}")
        self._marks.start()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._marks.stop()  # a clean stop leaves nothing to publish again

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds + self._backoff)
            self._wake.clear()
            try:
                await self._pass()
                self._backoff = 0.0
            except BusUnavailable as exc:
                self._look_up = True
                self._backoff = min(5.0, max(0.2, self._backoff * 2))
                log.warning("outbox_broker_unavailable", error=str(exc), retry_in=self._backoff)
            except Exception as exc:
                self._look_up = True
                self._backoff = min(5.0, max(0.2, self._backoff * 2))
                log.error("outbox_relay_failed", error=repr(exc))

    async def _pass(self) -> None:
        """Publish what was handed over, then look the outbox up when asked to, or as the poll."""
        asked = self._look_up
        polling = time.monotonic() - self._last_look >= self.poll_seconds
        if self._handed and not asked:
            await self._publish_handed()
        if not (asked or polling):
            return
        self._look_up = False
        self._last_look = time.monotonic()
        if asked:
            self._handed.clear()  # committed, so the lookup finds them in their place
        # The poll leaves the newest rows alone: they may be published already and not yet marked.
        min_age = self.min_age_seconds if asked else max(self.min_age_seconds, UNMARKED_GRACE_SECONDS)
        while await self.publish_pending_events(min_age) == self.batch_size:
            pass

    async def _publish_handed(self) -> None:
        batch, self._handed = sorted(self._handed, key=lambda row: row.id), []
        spans = ProducerSpans(
            self.bus.name, [(r.event.topic, r.event.envelope.event_id, r.event.envelope.trace) for r in batch]
        )
        result = await self.bus.publish_many(
            [
                Outgoing(
                    r.event.topic,
                    r.event.envelope.key,
                    r.event.envelope.to_bytes(),
                    r.event.envelope.event_id,
                    r.event.kind,
                    headers,
                )
                for r, headers in zip(batch, spans.headers, strict=True)
            ]
        )
        spans.end(result.acknowledged, result.error)
        now = time.time()
        for row in batch[: result.acknowledged]:
            OUTBOX_LAG.labels(self.service).observe(max(0.0, now - row.at))
        if result.acknowledged:
            EVENTS_PUBLISHED.labels(self.service).inc(result.acknowledged)
            self._marks.add(row.id for row in batch[: result.acknowledged])
        if result.error is not None and result.acknowledged < len(batch):
            raise result.error

    async def _mark(self, ids: list[int]) -> None:
        """Record rows published from memory (a mark lost to a crash only publishes its event
        again, which consumers drop)."""
        async with self.db.connect() as conn:
            await conn.execute(_MARK, {"ids": ids})

    async def publish_pending_events(self, min_age_seconds: float | None = None) -> int:
        """Publish one batch in id order, holding the rows' locks so that two relays never publish the
        same rows at once; returns how many were published. The marks are committed without waiting
        for the disk (see Database.begin): a mark lost in a crash only publishes its event again."""
        async with self.db.begin(durable=False) as conn:
            rows = (
                await conn.execute(
                    _PENDING,
                    {
                        "limit": self.batch_size,
                        "min_age": self.min_age_seconds if min_age_seconds is None else min_age_seconds,
                    },
                )
            ).all()
            published, failed = await self._send(rows)
            await self._record(conn, published, failed)
        if failed is not None:
            raise failed[1]
        return len(published)

    async def publish_events_of(self, key: str) -> int:
        """Publish one aggregate's pending events now, in order (the `sync` flow, inside a request).

        No connection is held while consumers are called: a request must not keep a pooled
        connection and row locks across HTTP calls. A concurrent publisher may send an event twice;
        consumers are idempotent by event id (their inbox).
        """
        async with self.db.connect() as conn:
            rows = (await conn.execute(_PENDING_OF_KEY, {"limit": self.batch_size, "key": key})).all()
        if not rows:
            return 0
        published, failed = await self._send(rows)
        async with self.db.begin() as conn:
            await self._record(conn, published, failed)
        if failed is not None:
            raise failed[1]
        return len(published)

    async def _send(self, rows: Sequence[Row]) -> tuple[list[int], tuple[int, BusUnavailable] | None]:
        """Publish rows as one pipelined batch, in order: (published ids, (first unpublished id, why))."""
        spans = ProducerSpans(self.bus.name, [(r.topic, str(r.event_id), _trace_of(r)) for r in rows])
        result = await self.bus.publish_many(
            [
                Outgoing(
                    row.topic,
                    row.key,
                    bytes(row.envelope),
                    message_id=str(row.event_id),
                    kind=row.kind or "",
                    headers=headers,
                )
                for row, headers in zip(rows, spans.headers, strict=True)
            ]
        )
        spans.end(result.acknowledged, result.error)
        published = [row.id for row in rows[: result.acknowledged]]
        now = time.time()
        for row in rows[: result.acknowledged]:
            OUTBOX_LAG.labels(self.service).observe(
                max(0.0, now - row.created_at.astimezone(UTC).timestamp())
            )
        if result.error is not None and result.acknowledged < len(rows):
            return published, (rows[result.acknowledged].id, result.error)
        return published, None

    async def _record(
        self, conn: Connection, published: list[int], failed: tuple[int, BusUnavailable] | None
    ) -> None:
        if published:
            await conn.execute(_MARK, {"ids": published})
            EVENTS_PUBLISHED.labels(self.service).inc(len(published))
        if failed is not None:
            await conn.execute(_FAIL, {"id": failed[0], "error": str(failed[1])[:500]})


async def pending_count(db: Database) -> int:
    async with db.connect() as conn:
        return int(
            (await conn.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))).scalar_one()
        )


def now_utc() -> datetime:
    return datetime.now(UTC)


def _trace_of(row: Row) -> dict[str, str]:
    """The context of the transaction that wrote the row (in its envelope); read only when spans
    are exported, since it means decoding the envelope."""
    return Envelope.from_bytes(bytes(row.envelope)).trace if exporting_now() else {}
