"""One phase: load (open or closed loop, with a fault injected or not), recovery, figures, checks.

`final_check` looks again, before a flow's platform stops, at the phases that had not settled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from sandwich.bench import faults as faults_mod
from sandwich.bench.context import Context, DonePhase
from sandwich.bench.faults import Fault, recovery_checks, settled
from sandwich.bench.figures import cpu_ms_per_order
from sandwich.bench.injection import Injection
from sandwich.bench.load import LiveCounts, OrderPlacer, PhaseClock, ProgressCallback, Record, run_open_loop
from sandwich.bench.metrics import (
    CONSUME_LAG_METRIC,
    HANDLE_METRIC,
    PUBLISH_LAG_METRIC,
    histogram_delta,
    scrape_histograms,
)
from sandwich.bench.observe import EndToEndSampler
from sandwich.bench.outcomes import Outcomes, collect_outcomes
from sandwich.bench.profile import Profiler, profiled_pids
from sandwich.bench.ramp import Ramp, run_closed_loop, run_ramped_closed_loop
from sandwich.bench.stats import ms
from sandwich.bench.summary import (
    SCRAPED,
    billing_operate,
    cpu_per_order,
    fault_delay,
    held,
    platform_total,
    summarize,
)


def _progress(console: Console, label: str, duration: float) -> Callable[[float, LiveCounts], None]:
    last_print = [0.0]

    def show(t: float, counts: LiveCounts) -> None:
        recent = sorted(counts.recent_latencies[-500:])
        p99 = recent[int(0.99 * (len(recent) - 1))] * 1000 if recent else 0.0
        line = (
            f"{label}: {min(t, duration):4.0f}/{duration:.0f}s  sent {counts.sent}  ok {counts.ok}  "
            f"errors {counts.errors}  in flight {counts.in_flight}  recent p99 {p99:.0f} ms"
            + (f"  last error {counts.last_error}" if counts.last_error else "")
        )
        if console.is_terminal:
            console.print(line, end="\r", highlight=False, soft_wrap=True)
        elif t - last_print[0] >= 5.0:
            last_print[0] = t
            console.print(line, highlight=False, soft_wrap=True)

    return show


QUIET_CPU_PERCENT = 25.0  # the platform's processes together, of one core


QUIESCE_MAX_S = 10.0


async def quiesce(ctx: Context) -> float:
    """Wait (at most QUIESCE_MAX_S) until the platform's processes together use under
    QUIET_CPU_PERCENT of a core: what an earlier phase left behind (letters to send, events to
    consume, waiting orders to try) is then not billed to this one. Seconds waited."""
    began = time.monotonic()
    while time.monotonic() - began < QUIESCE_MAX_S:
        await asyncio.sleep(1.0)
        now = time.monotonic()
        usage = ctx.sampler.window(now - 1.0, now)
        busy = platform_total(usage, "cpu_percent")
        if usage and busy < QUIET_CPU_PERCENT:
            break
    return round(time.monotonic() - began, 1)


async def run_phase(
    ctx: Context,
    *,
    scenario: str,
    mode: str,
    duration: float,
    rate: float | None = None,
    virtual_customers: int | None = None,
    ramp: Ramp | None = None,
    fault: Fault | None = None,
    settle_timeout: float | None = None,
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """Load the platform for `duration` seconds (with `fault` injected), wait for it to settle, and
    measure everything about the orders of this phase; with `profile_dir`, py-spy samples the busiest
    services meanwhile (bench/profile.py). A closed loop with `ramp` first finds its number of
    virtual customers, then holds it for `duration`: the figures are those of the hold, the checks
    after recovery cover every order of the phase."""
    target, console = ctx.target, ctx.console
    label = f"[{target.flow} {scenario}]"
    sampler = _end_to_end_sampler(ctx, mode, duration, rate)
    placer = OrderPlacer(ctx.client, ctx.customers, ctx.menu_item_id, on_created=sampler.offer)
    orders_before = ctx.orders_placed
    injection = Injection(fault, duration, target.platform, console, label)
    quiet_after = await quiesce(ctx)
    await injection.inject_for_the_whole_phase()
    # After a whole-phase injection: it restarts a service, whose counters start again from zero.
    before = await scrape_histograms(ctx.client, target.service_urls, SCRAPED)
    profiler = await _start_profiler(ctx, profile_dir, duration, label)
    clock = PhaseClock()
    began_mono = time.monotonic()
    sampler.start()
    injection.schedule(clock)
    climb = ramp.longest_climb if ramp is not None and mode == "closed" else 0.0
    progress = _progress(console, label, duration + climb)  # a ramp's climb: at most this long
    try:
        load = await _load(placer, clock, progress, mode, duration, rate, virtual_customers, ramp)
    finally:
        await injection.done_with_the_window()
        try:
            after = await scrape_histograms(ctx.client, target.service_urls, SCRAPED)
        finally:
            await injection.lift_after_the_whole_phase()
    if console.is_terminal:
        console.print()
    ended_mono = time.monotonic()
    load_seconds = clock.now()
    records = load.records
    ctx.orders_placed += sum(1 for r in records if r.ok)
    resources = ctx.sampler.window(began_mono + load.held_from, ended_mono)
    await sampler.finish(timeout=3.0)
    outcomes, settle_seconds, checks = await _recover(ctx, records, clock.wall0, settle_timeout)
    result = summarize(
        held(records, load.held_from),
        outcomes,
        clock.wall0 + load.held_from,
        duration,
        sampler.summary(),
        histogram_delta(after, before, PUBLISH_LAG_METRIC),
        histogram_delta(after, before, CONSUME_LAG_METRIC),
        histogram_delta(after, before, HANDLE_METRIC),
    )
    result.update(
        {
            "flow": target.flow,
            "broker": target.broker,
            "scenario": scenario,
            "mode": mode,
            "rate": rate,
            "virtual_customers": load.virtual_customers
            if load.virtual_customers is not None
            else virtual_customers,
            "ramp": load.ramp,
            "duration_s": duration,
            "load_seconds": round(load_seconds, 2),
            "orders_in_db_before": orders_before,
            "fault": injection.result(),
            "after_recovery": checks,
            "resources": resources,
            "error_examples": placer.examples,
            "quiet_after_s": quiet_after,
            "billing_operate": billing_operate(after, before),
            "fault_delay": fault_delay(after, before),
            "cpu": cpu_per_order(resources, result["create"]["ok"]),
        }
    )
    await _what_the_fault_and_profile_add(result, records, injection, profiler, resources, console, label)
    ctx.done.append(DonePhase(result, records, clock.wall0, time.monotonic()))
    _log_phase(console, label, result, settle_seconds)
    return result


def _end_to_end_sampler(ctx: Context, mode: str, duration: float, rate: float | None) -> EndToEndSampler:
    """The sampler's requests stay under 10% of the orders' (at least 5/s): it must not be the load."""
    expected = (rate or 0) * duration if mode == "open" else 400 * duration
    return EndToEndSampler(
        ctx.client,
        limit=ctx.durations.sample_limit,
        every=max(1, int(expected // max(1, ctx.durations.sample_limit))),
        max_rps=max(5.0, 0.1 * rate) if mode == "open" and rate else 5.0,
    )


async def _start_profiler(
    ctx: Context, profile_dir: Path | None, duration: float, label: str
) -> Profiler | None:
    if profile_dir is None:
        return None
    profiler = Profiler(profiled_pids(ctx.target.groups()), profile_dir, duration)
    if not await profiler.start():
        ctx.console.log(f"[yellow]{label} no profile: {'; '.join(profiler.errors)}")
    return profiler


@dataclass
class _Load:
    records: list[Record]
    held_from: float = 0.0  # phase seconds: where the measured part of the load began (after a ramp)
    virtual_customers: int | None = None  # the level a ramp held
    ramp: dict[str, Any] | None = None  # its levels and the steps it watched


async def _load(
    placer: OrderPlacer,
    clock: PhaseClock,
    progress: ProgressCallback,
    mode: str,
    duration: float,
    rate: float | None,
    virtual_customers: int | None,
    ramp: Ramp | None,
) -> _Load:
    """The phase's orders: an open loop at `rate`, a ramped closed loop, or one of `virtual_customers`."""
    if mode == "open":
        assert rate is not None
        return _Load(await run_open_loop(placer, rate, duration, on_progress=progress, clock=clock))
    if ramp is not None:
        ramped = await run_ramped_closed_loop(placer, ramp, duration, on_progress=progress, clock=clock)
        steps = {"levels": list(ramp.levels), "steps": ramped.steps}
        return _Load(ramped.records, ramped.hold_began, ramped.virtual_customers, steps)
    assert virtual_customers is not None
    return _Load(
        await run_closed_loop(placer, virtual_customers, duration, on_progress=progress, clock=clock)
    )


async def _recover(
    ctx: Context, records: list[Record], wall0: float, settle_timeout: float | None
) -> tuple[Outcomes, float, dict[str, Any]]:
    """Recovery: wait until no order of the phase is left `created` and every paid order was told.
    The outcomes then, the seconds waited, and the checks after recovery."""
    settle_began = time.monotonic()
    want_letters = ctx.target.mail_dir is not None
    timeout = settle_timeout if settle_timeout is not None else ctx.durations.settle
    outcomes: Outcomes
    while True:
        outcomes = await collect_outcomes(
            ctx.client, ctx.customers, records, wall0, mail_dir=ctx.target.mail_dir
        )
        if settled(outcomes, want_letters=want_letters) or time.monotonic() - settle_began > timeout:
            break
        await asyncio.sleep(1.0)
    settle_seconds = time.monotonic() - settle_began
    checks = recovery_checks(outcomes, settle_seconds)
    checks["settled"] = settled(outcomes, want_letters=want_letters)
    if not want_letters:
        checks["paid_without_letter"] = None
    return outcomes, settle_seconds, checks


async def _what_the_fault_and_profile_add(
    result: dict[str, Any],
    records: list[Record],
    injection: Injection,
    profiler: Profiler | None,
    resources: Mapping[str, Mapping[str, float]],
    console: Console,
    label: str,
) -> None:
    """The orders while the fault was in place, the profile, and whether billing's delay took effect."""
    if injection.info is not None and injection.injected:
        result["while_in_place"] = faults_mod.while_in_place(records, injection.moments)
    if profiler is not None:
        result["profile"] = await profiler.finish(cpu_ms_per_order(resources, result["create"]["ok"]))
    if injection.fault is not None and injection.fault.name == "billing_slow":
        delays = result["fault_delay"]
        effect = delays is not None and delays["p50_s"] is not None and delays["p50_s"] >= 0.18
        result["fault"]["in_effect"] = effect
        if not effect:
            console.log(
                f"[yellow]{label} billing delayed no payment: {faults_mod.FAULT_DELAY_ENV} is not in effect"
            )


def _log_phase(console: Console, label: str, result: Mapping[str, Any], settle_seconds: float) -> None:
    create, checks = result["create"], result["after_recovery"]
    console.log(
        f"{label} {create['ok']}/{create['sent']} created ({create['orders_per_s']:.0f}/s), "
        f"p50 {ms(create['latency']['p50'])} p99 {ms(create['latency']['p99'])} ms, "
        f"paid {result['paid']['orders_per_s']:.0f}/s; after {settle_seconds:.0f}s: "
        f"unfinished {checks['unfinished']}, duplicate charges {checks['duplicate_charges']}, "
        f"duplicate letters {checks['duplicate_notifications'] + checks['duplicate_letters']}"
        + (f"; errors {dict(create['errors'])}" if create["errors"] else "")
    )


async def final_check(ctx: Context, max_wait: float) -> None:
    """Look again, before the flow's platform stops, at every phase that had not settled when its
    recovery time ran out: orders still `created` now are unfinished for good, as far as this run can
    tell. Waits up to `max_wait` seconds for them; duplicates are counted again too (late letters)."""
    pending = [d for d in ctx.done if not d.result["after_recovery"].get("settled")]
    if not pending:
        return
    began = time.monotonic()
    want_letters = ctx.target.mail_dir is not None
    with ctx.console.status(f"[{ctx.target.flow}] waiting for {len(pending)} phase(s) to settle ..."):
        while pending:
            still: list[DonePhase] = []
            for done in pending:
                outcomes = await collect_outcomes(
                    ctx.client, ctx.customers, done.records, done.wall0, mail_dir=ctx.target.mail_dir
                )
                checks = recovery_checks(outcomes, time.monotonic() - done.ended)
                after = done.result["after_recovery"]
                final = settled(outcomes, want_letters=want_letters)
                for key in (
                    "unfinished",
                    "unfinished_ids",
                    "unfinished_but_charged",
                    "duplicate_charges",
                    "duplicate_charge_orders",
                    "duplicate_notifications",
                    "duplicate_letters",
                    "paid_without_notification",
                    "paid_without_letter",
                    "statuses",
                ):
                    after.setdefault(f"{key}_at_settle", after.get(key))
                    after[key] = checks[key] if key != "paid_without_letter" or want_letters else None
                after["checked_again_after_s"] = round(time.monotonic() - done.ended, 1)
                after["settled"] = final
                if not final:
                    still.append(done)
            pending = still
            if not pending or time.monotonic() - began > max_wait:
                break
            await asyncio.sleep(1.0)
    for done in ctx.done:
        after = done.result["after_recovery"]
        if "unfinished_at_settle" in after:
            ctx.console.log(
                f"[{ctx.target.flow} {done.result['scenario']}] {after['checked_again_after_s']:.0f}s after the "
                f"phase: unfinished {after['unfinished']} (was {after['unfinished_at_settle']}), duplicate "
                f"charges {after['duplicate_charges']}, duplicate letters "
                f"{after['duplicate_notifications'] + after['duplicate_letters']}"
            )
