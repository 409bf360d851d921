"""Closed loops: N virtual customers, each placing its next order once the previous one is decided.

`run_closed_loop` holds a given N; `run_ramped_closed_loop` first finds the N at which the platform
completes the most orders per second (`Ramp`), then holds it."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sandwich.bench.load import LiveCounts, OrderPlacer, PhaseClock, ProgressCallback, Record, report_progress


async def run_closed_loop(
    placer: OrderPlacer,
    virtual_customers: int,
    duration: float,
    *,
    follow: bool = True,
    on_progress: ProgressCallback | None = None,
    clock: PhaseClock | None = None,
) -> list[Record]:
    """`virtual_customers` loops, each placing its next order when the previous one is decided: at
    once when the create call answered `paid` or `payment_failed` (hybrid, sync); after following the
    order until it is (async's 202 `created`), when `follow`. Without following, a closed loop on
    the async flow would measure how fast orders are accepted, not paid.

    Virtual customer v orders as customers v, v + N, v + 2N, ... in turn (when there are more
    customers than loops), which keeps each customer's order count within what the read side lists.
    """
    run = await run_ramped_closed_loop(
        placer, Ramp((virtual_customers,), 0.0), duration, follow=follow, on_progress=on_progress, clock=clock
    )
    return run.records


@dataclass(frozen=True)
class Ramp:
    """How a closed loop finds the concurrency the platform does best at: it starts with
    `levels[0]` virtual customers and moves to the next level after each step, as long as the step
    just watched had no failed order and completed at least `min_gain` more orders per second than
    the best step before it; then it holds the best level.

    A step first lets its level warm up (until each of its virtual customers has had an order
    decided, `step_seconds` at most: a new loop's first order counts only once it is decided), then
    counts the orders decided in the next `step_seconds`."""

    levels: Sequence[int]
    step_seconds: float
    min_gain: float = 0.05

    @property
    def longest_climb(self) -> float:
        """Seconds before the hold at most (every level warmed up and watched)."""
        return len(self.levels) * 2 * self.step_seconds if len(self.levels) > 1 else 0.0


@dataclass
class RampedRun:
    records: list[Record]
    virtual_customers: int  # the level held
    hold_began: float  # phase seconds: the hold at that level, whose orders are the measurement
    steps: list[dict[str, Any]] = field(default_factory=list)  # each level watched on the way


async def run_ramped_closed_loop(
    placer: OrderPlacer,
    ramp: Ramp,
    hold_seconds: float,
    *,
    follow: bool = True,
    on_progress: ProgressCallback | None = None,
    clock: PhaseClock | None = None,
) -> RampedRun:
    """A closed loop (see `run_closed_loop`) whose number of virtual customers is found on the way
    (`ramp`), then held for `hold_seconds`.

    Why: a closed loop's throughput is its concurrency divided by the latency, so a fixed number of
    virtual customers measures the latency as much as the platform. With 32 the platform here was
    not saturated (55 orders/s at 25 ms of CPU per order); with 96 it did 110/s at 13 ms, its
    batching at work; with 256 the queue outgrew the gateway's timeouts. Loops above a lower level
    that is held again finish their current order and stop.
    """
    clock = clock or PhaseClock()
    counts = LiveCounts()
    records: list[Record] = []
    customers = placer.customers
    partition = max(ramp.levels)
    seq_counter = iter(range(1 << 62))
    decided_by_loop = [0] * partition  # orders each loop has had decided: the warm-ups wait on them
    allowed = [ramp.levels[0]]
    deadline = [math.inf if len(ramp.levels) > 1 else hold_seconds]

    async def loop(v: int) -> None:
        own = [c for i, c in enumerate(customers) if i % partition == v] or [customers[v % len(customers)]]
        turn = 0
        while clock.now() < deadline[0] and v < allowed[0]:
            seq = next(seq_counter)
            counts.due += 1
            counts.sent += 1
            counts.in_flight += 1
            customer = own[turn % len(own)]
            record = await placer.place(seq, customer, clock.now(), clock)
            turn += 1
            counts.finish(record)
            if follow:
                await placer.follow(record, customer, clock)
            records.append(record)  # decided: the ramp counts its steps by what is in `records`
            decided_by_loop[v] += 1
            if record.status == 0 and record.error in ("connect_error", "connection_closed"):
                await asyncio.sleep(0.05)  # the gateway is away: do not spin

    loops: list[asyncio.Task[None]] = []

    def grow_to(level: int) -> None:
        allowed[0] = level
        loops.extend(asyncio.create_task(loop(v)) for v in range(len(loops), level))

    reporter = asyncio.create_task(report_progress(clock, counts, on_progress))
    try:
        grow_to(ramp.levels[0])
        held, steps = await _climb(ramp, records, decided_by_loop, clock, grow_to)
        allowed[0] = held
        hold_began = clock.now()
        deadline[0] = hold_began + hold_seconds
        await asyncio.gather(*loops)
    finally:
        reporter.cancel()
        for task in loops:
            task.cancel()
    records.sort(key=lambda r: r.seq)
    return RampedRun(records, held, hold_began, steps)


async def _climb(
    ramp: Ramp,
    records: list[Record],
    decided_by_loop: Sequence[int],
    clock: PhaseClock,
    grow_to: Callable[[int], None],
) -> tuple[int, list[dict[str, Any]]]:
    """Watch each level of the ramp for a step; the level to hold, and what each step did."""
    if len(ramp.levels) == 1:
        return ramp.levels[0], []  # one level: nothing to find
    best: tuple[int, float] | None = None
    steps: list[dict[str, Any]] = []
    for index, level in enumerate(ramp.levels):
        if index > 0:
            grow_to(level)
        warmed = await _warm_up(decided_by_loop, clock, level, ramp.step_seconds)
        began = clock.now()
        await asyncio.sleep(ramp.step_seconds)
        ended = clock.now()
        decided = [r for r in records if began <= r.decided_at < ended]
        per_s = sum(1 for r in decided if r.ok) / max(1e-9, ended - began)
        failed = sum(1 for r in decided if not r.ok)
        steps.append(
            {
                "virtual_customers": level,
                "orders_per_s": round(per_s, 1),
                "failed": failed,
                "warm_up_s": round(warmed, 2),
            }
        )
        if failed or (best is not None and per_s < best[1] * (1 + ramp.min_gain)):
            break
        best = (level, per_s)
    return (best[0] if best is not None else ramp.levels[0]), steps


async def _warm_up(decided_by_loop: Sequence[int], clock: PhaseClock, level: int, longest: float) -> float:
    """Wait until each of the level's `level` loops has had an order decided, `longest` seconds at
    most: a step counted from the moment its loops start sees its first orders' latency as a gap
    (with 64 loops at 1.4 s per order, a 2.5 s step read 3 orders/s). Seconds waited.

    Per loop, not a count of orders: the loops of the level before go on deciding orders while the
    new ones wait for their first, and with a quota of `level` orders from any loop they could fill
    it alone (a fast old loop decides several) before the new loops' first orders were decided."""
    began = clock.now()
    while clock.now() - began < longest and not all(decided_by_loop[v] for v in range(level)):
        await asyncio.sleep(0.05)
    return clock.now() - began
