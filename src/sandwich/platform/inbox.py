"""Inbox: makes every consumer idempotent under at-least-once delivery.

The id of a handled event is recorded in the same transaction as the handler's effect; a redelivered
event finds its id already there and changes nothing. A handler that raises rolls both back, so the
bus redelivers it (and parks it on the dead-letter topic after bounded retries).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog
from sqlalchemy import text

from sandwich.platform.bus.base import Handler, Message
from sandwich.platform.db import Database
from sandwich.platform.events import Envelope
from sandwich.platform.observability import (
    EVENT_CONSUME_LAG,
    EVENTS_HANDLED,
    trace_id_from_traceparent,
    trace_id_var,
)
from sandwich.platform.sql import Connection

log = structlog.get_logger("inbox")

_CLAIM = text("INSERT INTO inbox (consumer, event_id) VALUES (:consumer, :event_id) ON CONFLICT DO NOTHING")

EnvelopeHandler = Callable[[Connection, Envelope], Awaitable[None]]
EventFilter = Callable[[Envelope], bool]
"""A consumer's cheap relevance test on the envelope, before any database work."""


async def claim_event(conn: Connection, consumer: str, event_id: str) -> bool:
    """True the first time this consumer sees the event (inside the caller's transaction)."""
    result = await conn.execute(_CLAIM, {"consumer": consumer, "event_id": uuid.UUID(event_id)})
    return bool(result.rowcount)


def idempotent_consumer(
    db: Database,
    service: str,
    consumer: str,
    handle: EnvelopeHandler,
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
        token = trace_id_var.set(trace_id_from_traceparent(envelope.trace.get("traceparent")) or "")
        try:
            async with db.begin() as conn:
                if not await claim_event(conn, consumer, envelope.event_id):
                    EVENTS_HANDLED.labels(service, consumer, "duplicate").inc()
                    return
                await handle(conn, envelope)
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
        finally:
            trace_id_var.reset(token)

    return on_message


def _age_seconds(occurred_at: str) -> float:
    try:
        return max(0.0, (datetime.now(UTC) - datetime.fromisoformat(occurred_at)).total_seconds())
    except ValueError:
        return 0.0
