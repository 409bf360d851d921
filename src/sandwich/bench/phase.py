"""One phase: load (open or closed loop, with a fault injected or not), recovery, figures, checks.

`final_check` looks again, before a flow's platform stops, at the phases that had not settled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from sandwich.bench import faults as faults_mod
from sandwich.bench.context import Context, DonePhase
from sandwich.bench.faults import Fault, recovery_checks, settled
from sandwich.bench.figures import cpu_ms_per_order
from sandwich.bench.load import LiveCounts, OrderPlacer, PhaseClock, run_open_loop
from sandwich.bench.observe import (
    CONSUME_LAG_METRIC,
    HANDLE_METRIC,
    PUBLISH_LAG_METRIC,
    EndToEndSampler,
    Outcomes,
    collect_outcomes,
    histogram_delta,
    scrape_histograms,
)
from sandwich.bench.profile import Profiler, profiled_pids
from sandwich.bench.ramp import Ramp, run_closed_loop, run_ramped_closed_loop
from sandwich.bench.report import ms
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
    expected = (rate or 0) * duration if mode == "open" else 400 * duration
    # The sampler's requests stay under 10% of the orders' (at least 5/s): it must not be the load.
    sampler = EndToEndSampler(
        ctx.client,
        limit=ctx.durations.sample_limit,
        every=max(1, int(expected // max(1, ctx.durations.sample_limit))),
        max_rps=max(5.0, 0.1 * rate) if mode == "open" and rate else 5.0,
    )
    placer = OrderPlacer(ctx.client, ctx.customers, ctx.menu_item_id, on_created=sampler.offer)
    orders_before = ctx.orders_placed
    fault_info: dict[str, Any] | None = None
    injected = lifted = False
    fault_tasks: list[asyncio.Task[None]] = []
    if fault is not None:
        window = fault.window(duration)
        fault_info = {"name": fault.name, "title": fault.title, "window": list(window), "errors": []}
    quiet_after = await quiesce(ctx)
    if fault is not None and fault.whole_phase:
        console.log(f"{label} injecting: {fault.title}")
        await asyncio.to_thread(fault.inject, target.platform)
        injected = True
    # After a whole-phase injection: it restarts a service, whose counters start again from zero.
    before = await scrape_histograms(ctx.client, target.service_urls, SCRAPED)

    profiler = None
    if profile_dir is not None:
        profiler = Profiler(profiled_pids(target.groups()), profile_dir, duration)
        if not await profiler.start():
            console.log(f"[yellow]{label} no profile: {'; '.join(profiler.errors)}")
    clock = PhaseClock()
    began_mono = time.monotonic()
    sampler.start()

    async def at(moment: float, action: Callable[[Any], None], what: str) -> None:
        nonlocal injected, lifted
        assert fault_info is not None
        await asyncio.sleep(max(0.0, moment - clock.now()))
        moments = fault_info.setdefault("moments", {})  # phase seconds: when each action began and ended
        moments[f"{what}_began"] = round(clock.now(), 3)
        try:
            await asyncio.to_thread(action, target.platform)
        except Exception as exc:
            fault_info["errors"].append(f"{what}: {exc!r}")
            console.log(f"[red]{label} {what} failed: {exc!r}")
            return
        moments[f"{what}_done"] = round(clock.now(), 3)
        if what == "inject":
            injected = True
        else:
            lifted = True

    if fault is not None and not fault.whole_phase:
        start, end = fault.window(duration)
        fault_tasks.append(asyncio.create_task(at(start, fault.inject, "inject")))
        fault_tasks.append(asyncio.create_task(at(end, fault.lift, "lift")))

    climb = ramp.longest_climb if ramp is not None and mode == "closed" else 0.0
    progress = _progress(console, label, duration + climb)  # a ramp's climb: at most this long
    held_from = 0.0  # phase seconds: where the measured part of the load began (after a ramp)
    ramp_info: dict[str, Any] | None = None
    try:
        if mode == "open":
            assert rate is not None
            records = await run_open_loop(placer, rate, duration, on_progress=progress, clock=clock)
        elif ramp is not None:
            ramped = await run_ramped_closed_loop(placer, ramp, duration, on_progress=progress, clock=clock)
            records, held_from = ramped.records, ramped.hold_began
            virtual_customers = ramped.virtual_customers
            ramp_info = {"levels": list(ramp.levels), "steps": ramped.steps}
        else:
            assert virtual_customers is not None
            records = await run_closed_loop(
                placer, virtual_customers, duration, on_progress=progress, clock=clock
            )
    finally:
        if fault_tasks:
            await asyncio.gather(*fault_tasks, return_exceptions=True)
        try:
            after = await scrape_histograms(ctx.client, target.service_urls, SCRAPED)
        finally:
            if fault is not None and fault.whole_phase and injected:
                try:
                    await asyncio.to_thread(fault.lift, target.platform)
                    lifted = True
                except Exception as exc:
                    assert fault_info is not None
                    fault_info["errors"].append(f"lift: {exc!r}")
    if console.is_terminal:
        console.print()
    ended_mono = time.monotonic()
    load_seconds = clock.now()
    ctx.orders_placed += sum(1 for r in records if r.ok)
    resources = ctx.sampler.window(began_mono + held_from, ended_mono)
    await sampler.finish(timeout=3.0)

    # Recovery: wait until no order of the phase is left `created` and every paid order was told.
    settle_began = time.monotonic()
    want_letters = target.mail_dir is not None
    timeout = settle_timeout if settle_timeout is not None else ctx.durations.settle
    outcomes: Outcomes
    while True:
        outcomes = await collect_outcomes(
            ctx.client, ctx.customers, records, clock.wall0, mail_dir=target.mail_dir
        )
        if settled(outcomes, want_letters=want_letters) or time.monotonic() - settle_began > timeout:
            break
        await asyncio.sleep(1.0)
    settle_seconds = time.monotonic() - settle_began
    checks = recovery_checks(outcomes, settle_seconds)
    checks["settled"] = settled(outcomes, want_letters=want_letters)
    if not want_letters:
        checks["paid_without_letter"] = None
    measured = held(records, held_from)
    result = summarize(
        measured,
        outcomes,
        clock.wall0 + held_from,
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
            "virtual_customers": virtual_customers,
            "ramp": ramp_info,
            "duration_s": duration,
            "load_seconds": round(load_seconds, 2),
            "orders_in_db_before": orders_before,
            "fault": fault_info and {**fault_info, "injected": injected, "lifted": lifted},
            "after_recovery": checks,
            "resources": resources,
            "error_examples": placer.examples,
            "quiet_after_s": quiet_after,
            "billing_operate": billing_operate(after, before),
            "fault_delay": fault_delay(after, before),
            "cpu": cpu_per_order(resources, result["create"]["ok"]),
        }
    )
    if fault_info is not None and injected:
        result["while_in_place"] = faults_mod.while_in_place(records, fault_info.get("moments") or {})
    if profiler is not None:
        result["profile"] = await profiler.finish(cpu_ms_per_order(resources, result["create"]["ok"]))
    if fault is not None and fault.name == "billing_slow":
        delays = result["fault_delay"]
        effect = delays is not None and delays["p50_s"] is not None and delays["p50_s"] >= 0.18
        result["fault"]["in_effect"] = effect
        if not effect:
            console.log(
                f"[yellow]{label} billing delayed no payment: {faults_mod.FAULT_DELAY_ENV} is not in effect"
            )
    ctx.done.append(DonePhase(result, records, clock.wall0, time.monotonic()))
    create = result["create"]
    console.log(
        f"{label} {create['ok']}/{create['sent']} created ({create['orders_per_s']:.0f}/s), "
        f"p50 {ms(create['latency']['p50'])} p99 {ms(create['latency']['p99'])} ms, "
        f"paid {result['paid']['orders_per_s']:.0f}/s; after {settle_seconds:.0f}s: "
        f"unfinished {checks['unfinished']}, duplicate charges {checks['duplicate_charges']}, "
        f"duplicate letters {checks['duplicate_notifications'] + checks['duplicate_letters']}"
        + (f"; errors {dict(create['errors'])}" if create["errors"] else "")
    )
    return result


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
