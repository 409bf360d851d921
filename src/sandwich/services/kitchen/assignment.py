"""The assigner's use cases (ADR 000 step 4), of the same shape as commands.py; its loop in
assigner.py runs them.

1. `assign_order`: for a waiting order, in ONE transaction, lock its pending row (SKIP LOCKED:
   another instance may be on it), reserve a slot and the ingredients at the nearest food point that
   can take it (`reserve_nearest`) and record the assignment as `reserved`;
2. `confirm_assignment`: after the commit, tell orders (the orders port's `assign`); agreed ->
   `confirmed`; refused (not found, or an illegal step: e.g. cancelled) -> the order cannot be
   assigned any more: the reservation is given back; orders away -> stays `reserved` and is asked
   again later;
3. an order that could not be placed and has waited longer than the assignment timeout is marked for
   cancellation (`assign_order`) and orders is asked to cancel it (`cancel_timed_out`, which refunds);
   the pending row goes once orders agreed, or refused because the order is gone or past cancelling.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum

import structlog
from prometheus_client import Counter

from sandwich.services.kitchen.commands import Wake
from sandwich.services.kitchen.domain import (
    NO_FOOD_POINT_IN_TIME,
    AssignmentState,
    PendingOrder,
    PointState,
    rank_candidates,
)
from sandwich.services.kitchen.ports import OrdersAway, OrdersPort, OrdersRefused, Refusal
from sandwich.services.kitchen.unit_of_work import KitchenUnitOfWork

log = structlog.get_logger("kitchen.assigner")

CONFIRMATIONS = Counter("kitchen_assignment_confirmations_total", "Answers of orders to assign", ["outcome"])


class Outcome(StrEnum):
    ASSIGNED = "assigned"
    WAITING = "waiting"
    EXPIRED = "expired"
    SKIPPED = "skipped"


class CandidateSnapshots:
    """The candidate snapshot, kept per supply version: while the version stands, a snapshot can
    only show more than there is (taking a slot or stock does not change the version; freeing or
    adding does), so "no point can take it" read from it is true, and a "maybe" goes on to the
    locked path, which reads afresh. The version itself is read every time, with the orders (a pass
    sets `supply_seen`, the version it started with)."""

    def __init__(self) -> None:
        self.supply_seen: int | None = None
        self._points: dict[tuple[tuple[str, int], ...], list[PointState]] = {}
        self._at: int | None = None

    async def read(self, uow: KitchenUnitOfWork, needs: Mapping[str, int]) -> tuple[int, list[PointState]]:
        supply = await uow.supply.version() if self.supply_seen is None else self.supply_seen
        key = tuple(sorted(needs.items()))
        found = self._points.get(key) if self._at == supply else None
        if found is not None:
            return supply, found
        supply, points = await uow.food_points.candidate_snapshot(needs)
        if self._at != supply:
            self._points, self._at = {}, supply
        self._points[key] = points
        return supply, points


def past_timeout(order: PendingOrder, timeout_seconds: float, now: datetime | None = None) -> bool:
    # A second early or late here only moves the decision to the locked path of a later pass.
    moment = now or datetime.now(UTC)
    return (moment - order.paid_at).total_seconds() >= timeout_seconds - 1.0


async def assign_order(
    waiting: PendingOrder,
    needs: dict[str, int] | None,
    uow: KitchenUnitOfWork,
    *,
    snapshots: CandidateSnapshots,
    timeout_seconds: float,
    tried: dict[int, list[str]] | None = None,
) -> tuple[Outcome, str | None]:
    """One waiting order in one transaction: assigned (to which food point), still waiting, timed
    out (marked for cancellation), or skipped (gone, or another transaction works on it). `needs`:
    None when what it needs cannot be known now (menu away, or an item it does not know).

    An order no food point can take right now (the common case while stock or slots are short) is
    only noted as tried, without locking it: the candidates and the supply version are read in one
    statement, so a supply change after it makes the order due again. With `tried`, the note is the
    caller's (the pass notes all of them in one statement per supply version).
    """
    order_id = waiting.order_id
    if needs is not None and not past_timeout(waiting, timeout_seconds):
        async with uow.statements() as quick:
            supply, points = await snapshots.read(quick, needs)
            if not any(point.can_take(needs) for point in points):
                if tried is None:
                    await quick.pending.note_attempt(order_id, supply)
                    await quick.commit()
                else:
                    tried.setdefault(supply, []).append(order_id)
                return Outcome.WAITING, None
    async with uow:
        locked = await uow.pending.lock(order_id, timeout_seconds)
        if locked is None:
            return Outcome.SKIPPED, None
        order, expired = locked
        # Read before the candidates: a supply change after this point makes the order due again.
        supply = await uow.supply.version()
        if needs is not None:
            food_point_id = await reserve_nearest(order, needs, uow)
            if food_point_id is not None:
                await uow.commit()
                log.info("order_reserved", order_id=order_id, food_point_id=food_point_id)
                return Outcome.ASSIGNED, food_point_id
        if expired:
            await uow.pending.request_cancel(order_id)
            await uow.commit()
            log.info("order_assignment_timed_out", order_id=order_id)
            return Outcome.EXPIRED, None
        await uow.pending.note_attempt(order_id, supply)
        await uow.commit()
        return Outcome.WAITING, None


async def reserve_nearest(
    order: PendingOrder, needs: Mapping[str, int], uow: KitchenUnitOfWork
) -> str | None:
    """In the unit's transaction (with the pending row locked): reserve at the nearest food point that
    can take the order, record the assignment and forget the pending row. The food point id, or None.

    Each candidate is reserved inside a savepoint; one that lost its slot or an ingredient since the
    snapshot is rolled back (its row locks released) and the next nearest is tried.
    """
    points = await uow.food_points.candidates(needs)
    for point in rank_candidates(points, needs, order.lat, order.lon):
        if not await uow.food_points.reserve(point.food_point_id, needs):
            continue
        await uow.assignments.record(order, point.food_point_id, needs)
        await uow.pending.drop(order.order_id)
        return point.food_point_id
    return None


class Confirmation(StrEnum):
    CONFIRMED = "confirmed"  # orders agreed, and the reservation is confirmed now
    RELEASED = "released"  # orders refused: the slot and the ingredients were given back
    UNCHANGED = "unchanged"  # orders answered, but the reservation had moved on already
    RETRY = "retry"  # orders away or answering what we do not understand: asked again later


async def confirm_assignment(
    order_id: str, food_point_id: str, uow: KitchenUnitOfWork, orders: OrdersPort, wake: Wake
) -> Confirmation:
    """Tell orders the order is reserved at the food point: agreed -> confirmed; refused (not found,
    or an illegal step: e.g. cancelled) -> it cannot be assigned any more, the reservation is given
    back; orders away -> asked again later."""
    try:
        await orders.assign(order_id, food_point_id)
    except OrdersAway as exc:
        CONFIRMATIONS.labels("unexpected" if exc.unexpected else "unavailable").inc()
        if not exc.unexpected:
            log.warning("assign_unconfirmed", order_id=order_id, error=str(exc))
        return await _note_confirm_attempt(order_id, uow)
    except OrdersRefused as refused:
        if refused.refusal is Refusal.NOT_YOUR_FOOD_POINT:  # not an answer assign gives: asked again
            CONFIRMATIONS.labels("unexpected").inc()
            log.error("assign_unexpected_answer", order_id=order_id, refusal=refused.refusal.value)
            return await _note_confirm_attempt(order_id, uow)
        CONFIRMATIONS.labels("refused").inc()
        log.info("assign_refused", order_id=order_id, refusal=refused.refusal.value, code=refused.code)
        return await _release_refused(order_id, uow, wake)
    CONFIRMATIONS.labels("confirmed").inc()
    async with uow:
        confirmed = await uow.assignments.confirm(order_id, food_point_id)
        await uow.commit()
    return Confirmation.CONFIRMED if confirmed else Confirmation.UNCHANGED


async def _release_refused(order_id: str, uow: KitchenUnitOfWork, wake: Wake) -> Confirmation:
    """orders cannot take the assignment any more (e.g. cancelled): the slot and ingredients go back."""
    async with uow:
        released = await uow.assignments.release(order_id, (AssignmentState.RESERVED.value,))
        if released is not None:
            uow.supply.notify_assigner()
        await uow.commit()
    if released is None:
        return Confirmation.UNCHANGED
    wake()
    return Confirmation.RELEASED


async def _note_confirm_attempt(order_id: str, uow: KitchenUnitOfWork) -> Confirmation:
    async with uow:
        await uow.assignments.note_confirm_attempt(order_id)
        await uow.commit()
    return Confirmation.RETRY


async def cancel_timed_out(order_id: str, uow: KitchenUnitOfWork, orders: OrdersPort) -> bool:
    """Ask orders to cancel an order no food point took in time (which refunds); True once orders
    agreed or refused (the order is gone or past cancelling) and the waiting order is forgotten, False
    while it is to be asked again."""
    outcome = "cancelled"
    try:
        await orders.cancel(order_id, NO_FOOD_POINT_IN_TIME)
    except OrdersAway as exc:
        if not exc.unexpected:
            log.warning("timeout_cancel_unavailable", order_id=order_id, error=str(exc))
        outcome = ""
    except OrdersRefused as refused:  # gone, or past cancelling: nothing left to wait for, unless
        outcome = "" if refused.refusal is Refusal.NOT_YOUR_FOOD_POINT else refused.refusal.value
    cancelled = bool(outcome)
    async with uow:
        if cancelled:
            await uow.pending.drop(order_id)
        else:
            await uow.pending.note_attempt(order_id)
        await uow.commit()
    if cancelled:
        log.info("order_cancelled_for_timeout", order_id=order_id, outcome=outcome)
    return cancelled
