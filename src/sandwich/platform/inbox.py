"""Inbox: makes every consumer idempotent under at-least-once delivery.

The id of a handled event is recorded in the same transaction as the handler's effect; a redelivered
event finds its id already there and changes nothing. A handler that raises rolls both back, so the
bus redelivers it (and parks it on the dead-letter topic after bounded retries).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import structlog
from sqlalchemy import TextClause, text

from sandwich.platform.bus.base import Handler, Message
from sandwich.platform.db import Database
from sandwich.platform.events import Envelope
from sandwich.platform.observability import (
    EVENT_CONSUME_LAG,
    EVENT_HANDLE_SECONDS,
    EVENTS_HANDLED,
)
from sandwich.platform.pg_notify import Notification
from sandwich.platform.sql import Connection, Row
from sandwich.platform.tracing import consumer_span

log = structlog.get_logger("inbox")

_CLAIM = text("INSERT INTO inbox (consumer, event_id) VALUES (:consumer, :event_id) ON CONFLICT DO NOTHING")

CLAIMED = "EXISTS (SELECT 1 FROM claim)"
"""The condition an Effect's writes carry: true only when this delivery claimed the event."""


@dataclass(frozen=True)
class Effect:
    """A consumer's whole effect on one event as one statement, with the inbox claim folded in.

    `ctes` are data-modifying CTEs (comma separated) that write only when the event is new to the
    consumer: each carries `CLAIMED` in its WHERE (`INSERT ... SELECT ... WHERE {CLAIMED}`). The
    platform runs `WITH claim AS (INSERT INTO inbox ...), {ctes} SELECT ...` in autocommit: one round
    trip per event instead of BEGIN, claim, effect, COMMIT. `result` adds expressions to the final
    SELECT list; `committed` is called with that row once the statement committed, when it claimed
    the event, and `notifications` gives what to NOTIFY then (sent after the commit: pg_notify.py).
    """

    ctes: str
    params: Mapping[str, Any]
    result: str = ""
    committed: Callable[[Row], None] | None = None
    notifications: Callable[[Row], Iterable[Notification]] | None = None


EnvelopeHandler = Callable[[Connection, Envelope], Awaitable[None]]
"""A consumer that works inside the transaction of its inbox claim."""


class InTransaction:
    """What an EffectOf answers for an event its effect cannot be one statement for."""


IN_TRANSACTION = InTransaction()

EffectOf = Callable[[Envelope], Awaitable[Effect | InTransaction | None]]
"""A consumer whose effect is one statement (None: the event changes nothing here; IN_TRANSACTION:
this event needs the consumer's transactional handler)."""


class OneStatement:
    """Marks a consumer given as an EffectOf (see `Service.consume`), with the handler that takes the
    events it answers IN_TRANSACTION for (the rare ones, whose effect takes several statements)."""

    def __init__(self, effect_of: EffectOf, in_transaction: EnvelopeHandler | None = None):
        self.effect_of = effect_of
        self.in_transaction = in_transaction


class Prepared:
    """Marks a consumer that needs slow work before its transaction (a call to another service):
    `prepare(envelope)` runs first, outside any transaction and holding no connection, and
    `apply(conn, envelope, prepared)` then runs in the transaction of the inbox claim with its result.
    A redelivered event is prepared again and then found claimed: preparing must change nothing.
    """

    def __init__(
        self,
        prepare: Callable[[Envelope], Awaitable[Any]],
        apply: Callable[[Connection, Envelope, Any], Awaitable[None]],
    ):
        self.prepare = prepare
        self.apply = apply


Consumer = EnvelopeHandler | OneStatement | Prepared
EventFilter = Callable[[Envelope], bool]
"""A consumer's cheap relevance test on the envelope, before any database work."""


async def claim_event(conn: Connection, consumer: str, event_id: str) -> bool:
    """True the first time this consumer sees the event (inside the caller's transaction)."""
    result = await conn.execute(_CLAIM, {"consumer": consumer, "event_id": uuid.UUID(event_id)})
    return bool(result.rowcount)


@lru_cache(maxsize=256)
def _claimed_statement(ctes: str, result: str) -> TextClause:
    return text(
        "WITH claim AS (INSERT INTO inbox (consumer, event_id) VALUES (:inbox_consumer, :inbox_event_id) "
        f"ON CONFLICT DO NOTHING RETURNING 1), {ctes} SELECT (SELECT count(*) FROM claim) AS claimed{result}"
    )


async def run_effect(db: Database, consumer: str, event_id: str, effect: Effect) -> bool:
    """Run `effect` once for the event: True when this delivery claimed it (False: a duplicate)."""
    params = {**effect.params, "inbox_consumer": consumer, "inbox_event_id": uuid.UUID(event_id)}
    result = ", " + effect.result if effect.result else ""
    async with db.connect() as conn:
        row = (await conn.execute(_claimed_statement(effect.ctes, result), params)).one()
        if row.claimed and effect.notifications is not None:
            for channel, payload in effect.notifications(row):
                conn.notify(channel, payload)
    if not row.claimed:
        return False
    if effect.committed is not None:
        effect.committed(row)
    return True


def idempotent_consumer(
    db: Database,
    service: str,
    consumer: str,
    handle: Consumer,
    after_commit: Callable[[], None] | None = None,
    wants: EventFilter | None = None,
) -> Handler:
    """Wrap `handle(conn, envelope)` so it runs once per event id, in one transaction with the claim.

    An event that `wants` turns down is acknowledged without opening a transaction: most consumers
    care about a few of an order's statuses, and the inbox claim of every other event was a
    database round trip per consumer per event for nothing. Ignoring it twice is as idempotent as
    ignoring it once, so it needs no claim.
    """

    async def on_message(message: Message) -> None:
        envelope = Envelope.from_bytes(message.value)
        if wants is not None and not wants(envelope):
            EVENTS_HANDLED.labels(service, consumer, "ignored").inc()
            return
        with consumer_span(message, envelope.trace, consumer, envelope.event_id):
            await _handle(message, envelope)

    async def _handle(message: Message, envelope: Envelope) -> None:
        began = time.perf_counter()
        try:
            if not await handle_once(db, consumer, handle, envelope):
                EVENTS_HANDLED.labels(service, consumer, "duplicate").inc()
                return
            EVENT_HANDLE_SECONDS.labels(service, consumer).observe(time.perf_counter() - began)
            EVENTS_HANDLED.labels(service, consumer, "handled").inc()
            EVENT_CONSUME_LAG.labels(service, consumer).observe(_age_seconds(envelope.occurred_at))
            if after_commit is not None:
                after_commit()
        except Exception:
            EVENTS_HANDLED.labels(service, consumer, "failed").inc()
            log.exception(
                "event_handler_failed", consumer=consumer, event_id=envelope.event_id, type=envelope.type
            )
            raise

    return on_message


async def handle_once(db: Database, consumer: str, handle: Consumer, envelope: Envelope) -> bool:
    """Apply the event unless this consumer has it already; False for a duplicate."""
    if isinstance(handle, OneStatement):
        effect = await handle.effect_of(envelope)
        if effect is None:
            return True  # nothing to change: as idempotent unclaimed as claimed
        if isinstance(effect, Effect):
            return await run_effect(db, consumer, envelope.event_id, effect)
        if handle.in_transaction is None:
            raise TypeError(f"{consumer} asked for a transaction but has no transactional handler")
        handle = handle.in_transaction
    if isinstance(handle, Prepared):
        prepared = await handle.prepare(envelope)
        async with db.begin() as conn:
            if not await claim_event(conn, consumer, envelope.event_id):
                return False
            await handle.apply(conn, envelope, prepared)
        return True
    async with db.begin() as conn:
        if not await claim_event(conn, consumer, envelope.event_id):
            return False
        await handle(conn, envelope)
    return True


def _age_seconds(occurred_at: str) -> float:
    try:
        return max(0.0, (datetime.now(UTC) - datetime.fromisoformat(occurred_at)).total_seconds())
    except ValueError:
        return 0.0
