"""The assigner (ADR 000 step 4): gives each paid order to the nearest food point that can take it.

One background loop per process. It runs a pass when woken (a new paid order, a food point created or
changed, stock put, a slot freed: a PostgreSQL NOTIFY after the commit reaches every instance, and
the routes of this process also wake it directly) and every `interval_seconds` as a safety net. A pass:
1. takes the waiting orders oldest first and, for each, in ONE transaction, locks its pending row
   (SKIP LOCKED: another instance may be on it), reserves a slot and the ingredients at the nearest
   food point that can take it (storage.try_assign) and records the assignment as `reserved`;
2. after the commit tells orders (POST /internal/v1/orders/{id}/assign); 200 -> `confirmed`; 409 or
   404 -> the order cannot be assigned any more (e.g. cancelled): the reservation is given back;
   orders unreachable -> stays `reserved` and is retried by later passes;
3. an order that could not be placed and has waited longer than the assignment timeout is marked for
   cancellation and orders is asked to cancel it (which refunds); the pending row goes once orders
   answered 200 or 409 (or 404).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import asyncpg
import structlog
from prometheus_client import Counter

from sandwich.platform.db import Database, plain_url
from sandwich.platform.http import ServiceUnavailable
from sandwich.platform.sql import Connection
from sandwich.services.kitchen import storage
from sandwich.services.kitchen.domain import (
    NO_FOOD_POINT_IN_TIME,
    AssignmentState,
    PendingOrder,
    PointState,
    Recipe,
    UnknownMenuItem,
    compute_needs,
)
from sandwich.services.kitchen.ports import OrdersPort, RecipeBook, RecipesUnavailable

log = structlog.get_logger("kitchen.assigner")

ASSIGNMENTS = Counter("kitchen_assignment_attempts_total", "Assignment attempts by outcome", ["outcome"])
CONFIRMATIONS = Counter("kitchen_assignment_confirmations_total", "Answers of orders to assign", ["outcome"])


class Outcome(StrEnum):
    ASSIGNED = "assigned"
    WAITING = "waiting"
    EXPIRED = "expired"
    SKIPPED = "skipped"


@dataclass
class PassReport:
    assigned: int = 0
    waiting: int = 0
    expired: int = 0
    skipped: int = 0
    confirmed: int = 0
    released: int = 0
    cancelled: int = 0


GATHER_SECONDS = 0.1
"""How long a woken assigner waits for more work before its pass (nothing to a cook's minutes)."""


class Waker:
    """An asyncio.Event that coalesces many wake-ups into one pass."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def wake(self) -> None:
        self.event.set()

    async def wait(self, timeout: float, gather_seconds: float = 0.0) -> None:
        """Until woken (or `timeout`), then `gather_seconds` more: wake-ups meanwhile join this one."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)
        if gather_seconds > 0:
            await asyncio.sleep(gather_seconds)
        self.event.clear()


class Assigner:
    def __init__(
        self,
        db: Database,
        orders: OrdersPort,
        recipes: RecipeBook,
        *,
        timeout_seconds: float,
        interval_seconds: float = 2.0,
        confirm_retry_seconds: float = 2.0,
        batch: int = 500,
        gather_seconds: float = GATHER_SECONDS,
    ):
        self.db = db
        self.orders = orders
        self.recipes = recipes
        self.timeout_seconds = timeout_seconds
        self.interval_seconds = interval_seconds
        self.confirm_retry_seconds = confirm_retry_seconds
        self.batch = batch
        self.gather_seconds = gather_seconds
        self.waker = Waker()
        self._timers: dict[str, float] = {}
        self._stale_swept_at: int | None = None
        self._supply_seen: int | None = None  # the version the current pass started with
        self._snapshots: dict[tuple[tuple[str, int], ...], list[PointState]] = {}
        self._snapshots_at: int | None = None

    def wake(self) -> None:
        self.waker.wake()

    # --- the loops ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Run passes for the life of the process: when woken, and at least every interval."""
        self.wake()
        while True:
            # The paid orders of the next moment join this pass: one lookup and one note of the
            # orders no food point can take yet for all of them, instead of a pass per order.
            await self.waker.wait(self.interval_seconds, self.gather_seconds)
            try:
                await self.run_pass()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("assigner_pass_failed", error=repr(exc))

    async def listen(self) -> None:
        """Turn NOTIFYs of committed work (from any instance) into wake-ups; reconnects when dropped."""
        dsn = plain_url(self.db.server_url, self.db.name)
        delay = 0.5
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(dsn)
                await conn.add_listener(storage.NOTIFY_CHANNEL, lambda *_: self.wake())
                self.wake()  # whatever happened while nobody listened
                delay = 0.5
                while not conn.is_closed():
                    await asyncio.sleep(10)
                    await conn.fetchval("SELECT 1")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("assigner_listen_failed", error=repr(exc), retry_in=delay)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)
            await asyncio.sleep(delay)
            delay = min(10.0, delay * 2)

    # --- one pass ----------------------------------------------------------------------------
    async def run_pass(self) -> PassReport:
        report = PassReport()
        async with self.db.connect() as conn:
            supply, untried = await storage.untried_orders(conn, self.batch)
            ask_stale = supply != self._stale_swept_at or self._timer_due("stale", self.interval_seconds)
            waiting = await storage.pending_orders(
                conn,
                self.batch,
                self.timeout_seconds,
                stale_before=supply if ask_stale else None,
                with_expired=self._timer_due("expired", self.interval_seconds),
                untried=untried,
            )
        if ask_stale and len(waiting) < self.batch:
            self._stale_swept_at = supply  # all of them are in this pass: none left stale at `supply`
        self._supply_seen = supply
        try:
            await self._assign_all(waiting, report)
        finally:
            self._supply_seen = None
        await self._sweep(report)
        return report

    async def _assign_all(self, waiting: list[PendingOrder], report: PassReport) -> None:
        recipes = await self._recipes_for(waiting)
        # Orders no food point can take now, noted as tried at the end of the pass in one statement
        # per supply version (one each was a transaction per paid order while stock is short).
        tried: dict[int, list[str]] = {}
        try:
            for order in waiting:
                outcome, food_point_id = await self.assign_one(
                    order, self._needs(order, recipes), tried=tried
                )
                await self._follow_up(outcome, order.order_id, food_point_id, report)
        finally:
            await self._note_tried(tried)

    async def _follow_up(
        self, outcome: Outcome, order_id: str, food_point_id: str | None, report: PassReport
    ) -> None:
        """Record an order's outcome, and tell orders of what it must know (assigned, timed out)."""
        ASSIGNMENTS.labels(outcome.value).inc()
        if outcome is Outcome.ASSIGNED and food_point_id is not None:
            report.assigned += 1
            await self._confirm(order_id, food_point_id, report)
        elif outcome is Outcome.EXPIRED:
            report.expired += 1
            await self._cancel(order_id, report)
        elif outcome is Outcome.WAITING:
            report.waiting += 1
        else:
            report.skipped += 1

    def _timer_due(self, name: str, every: float) -> bool:
        """True at most once per `every` seconds for `name` (and the first time)."""
        now = time.monotonic()
        if now - self._timers.get(name, -math.inf) < every:
            return False
        self._timers[name] = now
        return True

    async def _sweep(self, report: PassReport) -> None:
        """The safety nets, at most once per `confirm_retry_seconds`: what they look for is only due
        after that long, and a pass runs on every paid order (two queries each time for nothing)."""
        if not self._timer_due("sweep", self.confirm_retry_seconds):
            return
        await self.retry_unconfirmed(report)
        await self.retry_cancellations(report)

    async def _recipes_for(self, waiting: list[PendingOrder]) -> dict[str, Recipe] | None:
        if not waiting:
            return {}
        wanted = {menu_item_id for order in waiting for menu_item_id in order.menu_item_ids()}
        try:
            return await self.recipes.recipes(wanted)
        except RecipesUnavailable as exc:
            log.warning("recipes_unavailable", error=str(exc))
            return None

    @staticmethod
    def _needs(order: PendingOrder, recipes: dict[str, Recipe] | None) -> dict[str, int] | None:
        """What the order needs, or None when that cannot be known now (menu away or item unknown)."""
        if recipes is None:
            return None
        try:
            return compute_needs(order.lines(), recipes)
        except UnknownMenuItem as exc:
            log.warning("order_has_unknown_item", order_id=order.order_id, menu_item_id=exc.menu_item_id)
            return None

    async def _note_tried(self, tried: dict[int, list[str]]) -> None:
        if not tried:
            return
        async with self.db.connect() as conn:
            for supply, order_ids in tried.items():
                await storage.note_attempts(conn, order_ids, supply)

    async def assign_one(
        self,
        waiting: PendingOrder,
        needs: dict[str, int] | None,
        *,
        tried: dict[int, list[str]] | None = None,
    ) -> tuple[Outcome, str | None]:
        """One waiting order in one transaction: assigned (to which food point), still waiting, timed
        out (marked for cancellation), or skipped (gone, or another transaction works on it).

        An order no food point can take right now (the common case while stock or slots are short)
        is only noted as tried, without locking it: the candidates and the supply version are read
        in one statement, so a supply change after it makes the order due again.
        """
        order_id = waiting.order_id
        if needs is not None and not self._past_timeout(waiting):
            async with self.db.connect() as conn:
                supply, points = await self._candidates(conn, needs)
                if not any(point.can_take(needs) for point in points):
                    if tried is None:
                        await storage.note_attempt(conn, order_id, supply)
                    else:  # noted by the pass, with the others (_note_tried)
                        tried.setdefault(supply, []).append(order_id)
                    return Outcome.WAITING, None
        async with self.db.begin() as conn:
            locked = await storage.lock_pending(conn, order_id, self.timeout_seconds)
            if locked is None:
                return Outcome.SKIPPED, None
            order, expired = locked
            # Read before the candidates: a supply change after this point makes the order due again.
            supply = await storage.supply_version(conn)
            if needs is not None:
                food_point_id = await storage.try_assign(conn, order, needs)
                if food_point_id is not None:
                    log.info("order_reserved", order_id=order_id, food_point_id=food_point_id)
                    return Outcome.ASSIGNED, food_point_id
            if expired:
                await storage.request_cancel(conn, order_id)
                log.info("order_assignment_timed_out", order_id=order_id)
                return Outcome.EXPIRED, None
            await storage.note_attempt(conn, order_id, supply)
            return Outcome.WAITING, None

    async def _candidates(self, conn: Connection, needs: dict[str, int]) -> tuple[int, list[PointState]]:
        """The candidate snapshot, kept per supply version: while the version stands, a snapshot can
        only show more than there is (taking a slot or stock does not change the version; freeing or
        adding does), so "no point can take it" read from it is true, and a "maybe" goes on to the
        locked path, which reads afresh. The version itself is read every time, with the orders."""
        supply = await storage.supply_version(conn) if self._supply_seen is None else self._supply_seen
        key = tuple(sorted(needs.items()))
        found = self._snapshots.get(key) if self._snapshots_at == supply else None
        if found is None:
            supply, points = await storage.candidate_snapshot(conn, needs)
            if self._snapshots_at != supply:
                self._snapshots, self._snapshots_at = {}, supply
            self._snapshots[key] = points
            return supply, points
        return supply, found

    def _past_timeout(self, order: PendingOrder) -> bool:
        # A second early or late here only moves the decision to the locked path of a later pass.
        return (datetime.now(UTC) - order.paid_at).total_seconds() >= self.timeout_seconds - 1.0

    # --- talking to orders -------------------------------------------------------------------
    async def _confirm(self, order_id: str, food_point_id: str, report: PassReport) -> None:
        try:
            answer = await self.orders.assign(order_id, food_point_id)
        except ServiceUnavailable as exc:
            CONFIRMATIONS.labels("unavailable").inc()
            log.warning("assign_unconfirmed", order_id=order_id, error=str(exc))
            async with self.db.begin() as conn:
                await storage.note_confirm_attempt(conn, order_id)
            return
        if answer.status == 200:
            CONFIRMATIONS.labels("confirmed").inc()
            async with self.db.begin() as conn:
                if await storage.confirm(conn, order_id, food_point_id):
                    report.confirmed += 1
            return
        if answer.status in (404, 409):
            # The order cannot be assigned any more (cancelled, or unknown to orders): give it back.
            CONFIRMATIONS.labels("refused").inc()
            log.info("assign_refused", order_id=order_id, status=answer.status, body=answer.body)
            async with self.db.begin() as conn:
                released = await storage.release(conn, order_id, (AssignmentState.RESERVED.value,))
                if released is not None:
                    storage.notify_assigner(conn)
            if released is not None:
                report.released += 1
                self.wake()
            return
        CONFIRMATIONS.labels("unexpected").inc()
        log.error("assign_unexpected_answer", order_id=order_id, status=answer.status, body=answer.body)
        async with self.db.begin() as conn:
            await storage.note_confirm_attempt(conn, order_id)

    async def retry_unconfirmed(self, report: PassReport | None = None) -> None:
        """Reservations orders has not confirmed (it was unreachable): ask again."""
        report = report or PassReport()
        async with self.db.connect() as conn:
            due = await storage.unconfirmed(conn, self.confirm_retry_seconds)
        for order_id, food_point_id in due:
            await self._confirm(order_id, food_point_id, report)

    async def _cancel(self, order_id: str, report: PassReport) -> None:
        try:
            answer = await self.orders.cancel(order_id, NO_FOOD_POINT_IN_TIME)
        except ServiceUnavailable as exc:
            log.warning("timeout_cancel_unavailable", order_id=order_id, error=str(exc))
            async with self.db.begin() as conn:
                await storage.note_attempt(conn, order_id)
            return
        if answer.status in (200, 404, 409):
            async with self.db.begin() as conn:
                await storage.drop_pending(conn, order_id)
            report.cancelled += 1
            log.info("order_cancelled_for_timeout", order_id=order_id, status=answer.status)
            return
        log.error(
            "timeout_cancel_unexpected_answer", order_id=order_id, status=answer.status, body=answer.body
        )
        async with self.db.begin() as conn:
            await storage.note_attempt(conn, order_id)

    async def retry_cancellations(self, report: PassReport | None = None) -> None:
        report = report or PassReport()
        async with self.db.connect() as conn:
            due = await storage.cancellations_due(conn, self.confirm_retry_seconds)
        for order_id in due:
            await self._cancel(order_id, report)
