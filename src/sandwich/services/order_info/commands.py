"""The read side's use cases: apply an order event to the read model, and answer readers from it,
falling back to orders' copy while the read model has not caught up (read-your-writes right after
placing an order). Each takes its query, a unit of work and the write side's port, and answers with
the contract's shapes (a read side's views are what it serves, as cosmicpython's `views.py`) or
raises OrderNotFound; api.py makes them HTTP.

The live consumer applies events as one statement with its inbox claim (handlers.py, storage's
`update_effect`); `apply_order_event` is the same change for replay and the tests.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sandwich.services.order_info.domain import (
    OrderNotFound,
    OrderUpdate,
    Reader,
    has_ended,
    may_read,
    public_history,
    public_order,
)
from sandwich.services.order_info.ports import WriteSide, WrittenOrder
from sandwich.services.order_info.unit_of_work import OrderInfoUnitOfWork


@dataclass(frozen=True)
class ReadOrder:
    order_id: uuid.UUID
    reader: Reader


@dataclass(frozen=True)
class OrderWithHistory:
    """One order in the contract's shape and its history, oldest first (trace ids for admins)."""

    order: dict[str, Any]
    history: list[dict[str, str]]


async def apply_order_event(update: OrderUpdate, uow: OrderInfoUnitOfWork) -> bool:
    """Apply one order event; True when the view changed (a stale one may still fill a gap in the
    history; a repeated one changes nothing)."""
    async with uow:
        changed = await uow.views.apply(update)
        await uow.commit()
    return changed


async def customer_orders(reader: Reader, limit: int, uow: OrderInfoUnitOfWork) -> list[dict[str, Any]]:
    """The reader's own orders, newest first, as far as the read model has seen them."""
    try:
        user_id = uuid.UUID(reader.user_id)
    except ValueError:
        return []  # no such customer, so no orders (and no query)
    async with uow.statements() as step:
        snapshots = await step.views.of_user(user_id, limit)
    return [public_order(snapshot) for snapshot in snapshots]


async def order_with_history(
    query: ReadOrder, uow: OrderInfoUnitOfWork, orders: WriteSide
) -> OrderWithHistory:
    """One order with its history; someone else's order is not found, exactly like a missing one."""
    async with uow.statements() as step:
        found = await step.views.view(query.order_id)
        history = await step.views.history(query.order_id) if found else []
    if found is None:
        # Read-your-writes: an order placed a moment ago may not have reached the read model yet.
        written = await _written_order(query, orders)
        return OrderWithHistory(written.order, written.history)
    owner, snapshot = found
    if not may_read(owner, query.reader.user_id, query.reader.is_admin):
        raise OrderNotFound(str(query.order_id))
    return OrderWithHistory(
        public_order(snapshot), public_history(history, with_traces=query.reader.is_admin)
    )


async def order_stream_ended(
    query: ReadOrder, seen_version: int | None, uow: OrderInfoUnitOfWork, orders: WriteSide
) -> bool:
    """Whether the reader, who has seen `seen_version` (Last-Event-ID), has seen the order end, so a
    stream would have nothing to send. An order the read model has not seen yet is looked up in
    orders: the stream then starts once the read model has it."""
    async with uow.statements() as step:
        current = await step.views.current_status(query.order_id)
    if current is None:
        await _written_order(query, orders)
        return False
    owner, entry = current
    if not may_read(owner, query.reader.user_id, query.reader.is_admin):
        raise OrderNotFound(str(query.order_id))
    return seen_version is not None and has_ended(entry, seen_version)


async def _written_order(query: ReadOrder, orders: WriteSide) -> WrittenOrder:
    """orders' copy of the order, when it knows it and it is the reader's."""
    written = await orders.order(query.order_id)
    if written is None or not may_read(written.owner, query.reader.user_id, query.reader.is_admin):
        raise OrderNotFound(str(query.order_id))
    return written
