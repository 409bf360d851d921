"""Rebuilding the read model from the retained event stream (`sandwich replay order_info`).

In one transaction: forget the views, the history and the inbox of the OrderEvent consumer, then apply
every retained envelope exactly as the live consumer does (claim the event id in the inbox, then
apply it: the use case `apply_order_event`, in this transaction), and commit. Because the read model converges on the same state whatever the
order and duplication of its events, the result is the model the live consumer built, as long as the
broker still retains every event it was built from.

It is safe while the live consumer runs: the tables are locked against writers first (the inbox
first, as the consumer takes it first, so neither waits for the other in a cycle) while readers keep
reading the old model until the commit; the consumer, blocked meanwhile, then finds in the inbox what
the replay applied and applies what came later, and the version rule settles any overlap.

A rebuild that would end with fewer orders than before (the broker no longer retains the oldest
events, or some views came from elsewhere) is rolled back unless asked for explicitly.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

import structlog
from sqlalchemy import text

from sandwich.platform.bus.base import Message
from sandwich.platform.events import ORDER_EVENT, Envelope
from sandwich.platform.inbox import claim_event
from sandwich.platform.sql import Connection
from sandwich.services.order_info.commands import apply_order_event
from sandwich.services.order_info.domain import InvalidOrderEvent
from sandwich.services.order_info.handlers import CONSUMER, order_update
from sandwich.services.order_info.unit_of_work import SqlOrderInfoUnitOfWork

log = structlog.get_logger("order_info.replay")


@dataclass
class ReplayReport:
    undecodable: int = 0  # messages that were not an envelope at all
    events: int = 0  # envelopes read
    applied: int = 0  # OrderEvents applied (first time their id was seen)
    duplicates: int = 0  # envelopes whose event id was applied already
    ignored: int = 0  # envelopes of other types (claimed, as the live consumer does, and skipped)
    invalid: int = 0  # OrderEvents the live consumer cannot apply either (it dead-letters them)
    orders_before: int = 0
    orders: int = 0


class ReplayWouldLoseOrders(RuntimeError):
    """The rebuilt model has fewer orders than the old one; the transaction is rolled back."""

    def __init__(self, report: ReplayReport) -> None:
        super().__init__(
            f"the retained events rebuild {report.orders} orders, the read model has {report.orders_before}: "
            "the broker no longer holds every event (or some views did not come from it)"
        )
        self.report = report


async def envelopes_of(messages: AsyncIterable[Message], report: ReplayReport) -> AsyncIterator[Envelope]:
    """The envelopes of bus messages; what does not parse is counted and skipped."""
    async for message in messages:
        try:
            yield Envelope.from_bytes(message.value)
        except ValueError as exc:
            report.undecodable += 1
            log.warning("replay_message_undecodable", key=message.key, error=str(exc)[:300])


def _applicable(envelope: Envelope) -> bool:
    """False for what the live consumer would fail on (and dead-letter) instead of applying."""
    try:
        uuid.UUID(envelope.event_id)
        if envelope.type == ORDER_EVENT:
            order_update(envelope)
    except (ValueError, KeyError, TypeError, InvalidOrderEvent) as exc:
        log.warning("replay_event_invalid", event_id=envelope.event_id, error=str(exc)[:300])
        return False
    return True


async def _count_orders(conn: Connection) -> int:
    return int((await conn.execute(text("SELECT count(*) FROM order_views"))).scalar_one())


async def rebuild(
    conn: Connection,
    envelopes: AsyncIterable[Envelope],
    *,
    report: ReplayReport | None = None,
    allow_fewer_orders: bool = False,
) -> ReplayReport:
    """Replace the read model with the one `envelopes` build, inside the caller's transaction.

    Raises ReplayWouldLoseOrders (the caller's transaction must then roll back) when the new model
    has fewer orders than the old one, unless `allow_fewer_orders`.
    """
    report = report or ReplayReport()
    await conn.execute(text("LOCK TABLE inbox, order_views, order_history IN EXCLUSIVE MODE"))
    report.orders_before = await _count_orders(conn)
    # DELETE rather than TRUNCATE: TRUNCATE would lock readers out until the commit, DELETE lets them
    # read the old model meanwhile.
    await conn.execute(text("DELETE FROM order_history"))
    await conn.execute(text("DELETE FROM order_views"))
    await conn.execute(text("DELETE FROM inbox WHERE consumer = :consumer"), {"consumer": CONSUMER})
    async for envelope in envelopes:
        report.events += 1
        if not _applicable(envelope):
            report.invalid += 1
            continue
        if not await claim_event(conn, CONSUMER, envelope.event_id):
            report.duplicates += 1
            continue
        if envelope.type == ORDER_EVENT:
            await apply_order_event(order_update(envelope), SqlOrderInfoUnitOfWork.joining(conn))
            report.applied += 1
        else:
            report.ignored += 1
    report.orders = await _count_orders(conn)
    if report.orders < report.orders_before and not allow_fewer_orders:
        raise ReplayWouldLoseOrders(report)
    return report
