"""`sandwich bench`: phases put together on a platform (self-started, or a running one).

The parts: the platform (`target.py`), what a flow's phases share (`context.py`), one phase
(`phase.py`, its figures in `summary.py`), the targets judged (`verdicts.py`).

`run_single` is `sandwich bench` (one flow: an open-loop phase at --rate and/or a closed-loop phase
with --customers); `compare.run_compare`, `sandwich bench --compare`, puts the phases of every flow
together. Both return the result as one JSON-ready dict.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console

from sandwich.bench.context import (
    DEPOSIT,
    Context,
    Durations,
    customers_needed,
    idle_memory,
    measure_floors,
    prepare,
)
from sandwich.bench.customers import Customer, setup_customers
from sandwich.bench.load import OrderPlacer, PhaseClock
from sandwich.bench.phase import final_check, run_phase
from sandwich.bench.target import Target, attach_platform, platform_note, start_platform, stop_platform
from sandwich.bench.verdicts import floor_ratios, targets
from sandwich.platform.settings import Broker


@dataclass
class SingleOptions:
    flow: str
    rate: float | None
    customers: int | None
    duration: float
    url: str | None
    data_dir: Path
    admin: tuple[str, str] | None = None
    floors: bool = True
    quick: bool = False
    keep_data: bool = False
    scale_to: int | None = None  # --scale: measure at 1,000 orders in the databases, then at this many
    profile: bool = False  # py-spy on the busiest services during each phase
    broker: Broker = Broker.NATS  # what a self-started platform embeds


async def run_single(options: SingleOptions, console: Console) -> dict[str, Any]:
    from sandwich.bench.report import machine

    began = time.monotonic()
    durations = Durations.quick() if options.quick else Durations()
    base = options.data_dir / "bench"
    base.mkdir(parents=True, exist_ok=True)
    info = machine()
    target = await _target(options, base, console)
    result: dict[str, Any] = {
        "machine": info,
        "compare": False,
        "flow": target.flow,
        "broker": target.broker,
        "phases": [],
        "skipped": {},
    }
    ctx: Context | None = None
    try:
        expected = max(
            (options.rate or 0) * options.duration, 400 * options.duration if options.customers else 0
        )
        concurrency = max(options.customers or 0, int((options.rate or 0) * 2), 64)
        ctx = await prepare(
            target,
            console,
            durations,
            customers_needed(expected, max(16, options.customers or 0)),
            concurrency,
        )
        result["idle_memory"] = {target.flow: await idle_memory(ctx)} if ctx.sampler.samples else {}
        if options.floors:
            result["floors"] = await measure_floors(ctx, durations.floors)
        await _phases(ctx, options, base, result)
        await final_check(ctx, 30.0)
    finally:
        if ctx is not None:
            ctx.sampler.stop()
            await ctx.client.aclose()
        await asyncio.to_thread(stop_platform, target, keep=options.keep_data)
    _judge(result, options)
    result["wall_time_s"] = round(time.monotonic() - began, 1)
    result["platform_note"] = platform_note(target)
    result["generator_note"] = GENERATOR_NOTE
    return result


async def _target(options: SingleOptions, base: Path, console: Console) -> Target:
    """The platform at --url, or one started for this run."""
    if options.url:
        target = attach_platform(
            options.url, options.data_dir if options.data_dir.exists() else None, options.admin
        )
        if target.flow == "unknown":
            target.flow = options.flow
        return target
    if options.scale_to:
        # A waiting order is cancelled (and refunded) after the assignment timeout; the bench's
        # orders never find a food point, and that background work must not fall into one
        # measurement and not the other.
        return await asyncio.to_thread(
            partial(
                start_platform,
                options.flow,
                base,
                console,
                broker=options.broker,
                extra_env={"SANDWICH_ASSIGNMENT_TIMEOUT": "86400"},
            )
        )
    return await asyncio.to_thread(
        partial(start_platform, options.flow, base, console, broker=options.broker)
    )


async def _phases(ctx: Context, options: SingleOptions, base: Path, result: dict[str, Any]) -> None:
    """--scale's two phases; else an open loop at --rate and/or a closed loop of --customers."""
    if options.scale_to:
        result["scale"] = await run_scale(ctx, options.scale_to, options.customers or 32, options.duration)
        result["phases"].extend(result["scale"].pop("phases"))
        return
    if options.rate:
        result["phases"].append(
            await run_phase(
                ctx,
                scenario="healthy",
                mode="open",
                duration=options.duration,
                rate=options.rate,
                settle_timeout=30.0,
                profile_dir=_profile_dir(options, base, "open"),
            )
        )
    if options.customers:
        result["phases"].append(
            await run_phase(
                ctx,
                scenario="max throughput",
                mode="closed",
                duration=options.duration,
                virtual_customers=options.customers,
                settle_timeout=30.0,
                profile_dir=_profile_dir(options, base, "closed"),
            )
        )


def _profile_dir(options: SingleOptions, base: Path, loop: str) -> Path | None:
    return base / f"profile-{time.strftime('%H%M%S')}-{loop}" if options.profile else None


def _judge(result: dict[str, Any], options: SingleOptions) -> None:
    """The floors' ratios and the targets, once the platform has stopped."""
    floors = result.get("floors") or {}
    result["floors"] = {**floors, "ratios": floor_ratios(floors, result["phases"])} if floors else {}
    scale_pair = (result["phases"][0], result["phases"][1]) if options.scale_to else None
    result["targets"] = [
        v.as_dict()
        for v in targets(
            result["phases"],
            floors,
            result.get("idle_memory") or {},
            compare=False,
            wall_time=None,
            scale=scale_pair,
        )
    ]


SCALE_SCENARIO = "max throughput, more data"
SCALE_FIRST_AT = 1_000  # orders in the databases at the first measurement (the target's "1,000")


async def run_scale(ctx: Context, scale_to: int, virtual_customers: int, duration: float) -> dict[str, Any]:
    """Throughput at 1,000 orders already in the databases and again at `scale_to`: the same
    closed-loop phase twice, with the platform filled through its own API in between (every order a
    real one: ledger entry, events, read model, letter). Also the throughput while filling, against
    the number of orders stored, so a slow decline shows as a curve and not only as two points."""
    fillers = await setup_customers(ctx.client, virtual_customers, deposit=DEPOSIT, prefix=None)
    curve: list[dict[str, float]] = []
    await fill_orders(ctx, fillers, SCALE_FIRST_AT, virtual_customers, curve)
    first = await run_phase(
        ctx,
        scenario="max throughput",
        mode="closed",
        duration=duration,
        virtual_customers=virtual_customers,
        settle_timeout=60.0,
    )
    await fill_orders(ctx, fillers, scale_to, virtual_customers, curve)
    second = await run_phase(
        ctx,
        scenario=SCALE_SCENARIO,
        mode="closed",
        duration=duration,
        virtual_customers=virtual_customers,
        settle_timeout=60.0,
    )
    return {"phases": [first, second], "fill_curve": curve, "filled_to": ctx.orders_placed}


async def fill_orders(
    ctx: Context,
    customers: Sequence[Customer],
    until: int,
    virtual_customers: int,
    curve: list[dict[str, float]],
    report_every: float = 10.0,
) -> None:
    """Place orders closed-loop until the bench has placed `until` in all; every `report_every`
    seconds the throughput and the orders stored then go to `curve` (and the console)."""
    placer = OrderPlacer(ctx.client, customers, ctx.menu_item_id)
    clock = PhaseClock()
    sequence = iter(range(10**9))
    errors: Counter[str] = Counter()

    async def customer_loop(customer: Customer) -> None:
        while ctx.orders_placed < until:
            record = await placer.place(next(sequence), customer, clock.now(), clock)
            if record.ok:
                ctx.orders_placed += 1
            else:
                errors[record.error or "unknown"] += 1
                await asyncio.sleep(0.2)

    last = [clock.now(), float(ctx.orders_placed)]  # time and count of the last point of the curve

    def add_point() -> None:
        now, placed = clock.now(), ctx.orders_placed
        rate = (placed - last[1]) / max(1e-9, now - last[0])
        curve.append({"orders_in_db": placed, "orders_per_s": round(rate, 1), "errors": sum(errors.values())})
        ctx.console.log(f"filling: {placed}/{until} orders in the databases, {rate:.0f} orders/s")
        last[:] = [now, float(placed)]

    async def reporter() -> None:
        while True:
            await asyncio.sleep(report_every)
            add_point()

    if ctx.orders_placed >= until:
        return
    progress = asyncio.create_task(reporter())
    try:
        await asyncio.gather(
            *(customer_loop(customers[i % len(customers)]) for i in range(virtual_customers))
        )
    finally:
        progress.cancel()
    add_point()  # the stretch since the last report (all of it when the fill took less than one)
    if errors:
        ctx.notes.append(f"while filling to {until} orders: errors {dict(errors)}")


GENERATOR_NOTE = (
    "one asyncio process on the same machine, one aiohttp session with a connection per request in flight"
)
