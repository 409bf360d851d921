"""The assigner (ADR 000 step 4): gives each paid order to the nearest food point that can take it.

One background loop per process. It runs a pass when woken (a new paid order, a food point created or
changed, stock put, a slot freed: a PostgreSQL NOTIFY after the commit reaches every instance, and
the routes of this process also wake it directly) and every `interval_seconds` as a safety net. A pass
takes the waiting orders oldest first and runs the use cases of assignment.py on each: reserve at the
nearest food point that can take it, tell orders, and ask orders to cancel the ones that waited past
the assignment timeout; its safety nets ask orders again about what it could not reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import structlog
from prometheus_client import Counter

from sandwich.services.kitchen.assignment import (
    CandidateSnapshots,
    Confirmation,
    Outcome,
    assign_order,
    cancel_timed_out,
    confirm_assignment,
)
from sandwich.services.kitchen.domain import PendingOrder, Recipe, UnknownMenuItem, compute_needs
from sandwich.services.kitchen.ports import OrdersPort, RecipeBook, RecipesUnavailable
from sandwich.services.kitchen.storage import NOTIFY_CHANNEL
from sandwich.services.kitchen.unit_of_work import KitchenUnitOfWork

log = structlog.get_logger("kitchen.assigner")

ASSIGNMENTS = Counter("kitchen_assignment_attempts_total", "Assignment attempts by outcome", ["outcome"])

__all__ = ["GATHER_SECONDS", "Assigner", "Outcome", "PassReport", "Waker"]


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
        unit_of_work: Callable[[], KitchenUnitOfWork],
        orders: OrdersPort,
        recipes: RecipeBook,
        *,
        listen_dsn: str,
        timeout_seconds: float,
        interval_seconds: float = 2.0,
        confirm_retry_seconds: float = 2.0,
        batch: int = 500,
        gather_seconds: float = GATHER_SECONDS,
    ):
        self.unit_of_work = unit_of_work
        self.orders = orders
        self.recipes = recipes
        self.listen_dsn = listen_dsn
        self.timeout_seconds = timeout_seconds
        self.interval_seconds = interval_seconds
        self.confirm_retry_seconds = confirm_retry_seconds
        self.batch = batch
        self.gather_seconds = gather_seconds
        self.waker = Waker()
        self._timers: dict[str, float] = {}
        self._stale_swept_at: int | None = None
        self.snapshots = CandidateSnapshots()

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
        dsn = self.listen_dsn
        delay = 0.5
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(dsn)
                await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self.wake())
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
        async with self.unit_of_work().statements() as reads:
            supply, untried = await reads.pending.untried(self.batch)
            ask_stale = supply != self._stale_swept_at or self._timer_due("stale", self.interval_seconds)
            waiting = await reads.pending.worth_trying(
                self.batch,
                self.timeout_seconds,
                stale_before=supply if ask_stale else None,
                with_expired=self._timer_due("expired", self.interval_seconds),
                untried=untried,
            )
        if ask_stale and len(waiting) < self.batch:
            self._stale_swept_at = supply  # all of them are in this pass: none left stale at `supply`
        self.snapshots.supply_seen = supply
        try:
            await self._assign_all(waiting, report)
        finally:
            self.snapshots.supply_seen = None
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
        async with self.unit_of_work().statements() as quick:
            for supply, order_ids in tried.items():
                await quick.pending.note_attempts(order_ids, supply)
            await quick.commit()

    async def assign_one(
        self,
        waiting: PendingOrder,
        needs: dict[str, int] | None,
        *,
        tried: dict[int, list[str]] | None = None,
    ) -> tuple[Outcome, str | None]:
        """One waiting order (`assignment.assign_order`): assigned (to which food point), still
        waiting, timed out (marked for cancellation), or skipped."""
        return await assign_order(
            waiting,
            needs,
            self.unit_of_work(),
            snapshots=self.snapshots,
            timeout_seconds=self.timeout_seconds,
            tried=tried,
        )

    # --- talking to orders -------------------------------------------------------------------
    async def _confirm(self, order_id: str, food_point_id: str, report: PassReport) -> None:
        answer = await confirm_assignment(
            order_id, food_point_id, self.unit_of_work(), self.orders, self.wake
        )
        if answer is Confirmation.CONFIRMED:
            report.confirmed += 1
        elif answer is Confirmation.RELEASED:
            report.released += 1

    async def retry_unconfirmed(self, report: PassReport | None = None) -> None:
        """Reservations orders has not confirmed (it was unreachable): ask again."""
        report = report or PassReport()
        async with self.unit_of_work().statements() as reads:
            due = await reads.assignments.unconfirmed(self.confirm_retry_seconds)
        for order_id, food_point_id in due:
            await self._confirm(order_id, food_point_id, report)

    async def _cancel(self, order_id: str, report: PassReport) -> None:
        if await cancel_timed_out(order_id, self.unit_of_work(), self.orders):
            report.cancelled += 1

    async def retry_cancellations(self, report: PassReport | None = None) -> None:
        """Timed-out orders whose cancellation orders has not confirmed: ask again."""
        report = report or PassReport()
        async with self.unit_of_work().statements() as reads:
            due = await reads.pending.cancellations_due(self.confirm_retry_seconds)
        for order_id in due:
            await self._cancel(order_id, report)
