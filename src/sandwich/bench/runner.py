"""Phases put together: a platform (self-started, or a running one), customers, load, checks.

`run_single` is `sandwich bench` (one flow: an open-loop phase at --rate and/or a closed-loop phase
with --customers); `compare.run_compare`, `sandwich bench --compare`, puts the phases of every flow
together. Both return the result as one JSON-ready dict.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import secrets
import shutil
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console

from sandwich.bench import brokers as brokers_mod
from sandwich.bench import faults as faults_mod
from sandwich.bench.client import Http, client_for
from sandwich.bench.customers import Customer, create_menu_item, first_menu_item, login, setup_customers
from sandwich.bench.faults import Fault, recovery_checks, settled
from sandwich.bench.figures import at_target_rate, cpu_ms_per_order, event_lag_p99, find
from sandwich.bench.floors import database_floor, http_floor, machine_floor
from sandwich.bench.load import LiveCounts, OrderPlacer, PhaseClock, Record, run_open_loop
from sandwich.bench.observe import (
    BENCH_GROUP,
    CONSUME_LAG_METRIC,
    HANDLE_METRIC,
    OTHER_GROUP,
    PUBLISH_LAG_METRIC,
    EndToEndSampler,
    Outcomes,
    ResourceSampler,
    collect_outcomes,
    discover_platform,
    histogram_delta,
    scrape_histograms,
)
from sandwich.bench.profile import Profiler, profiled_pids
from sandwich.bench.ramp import Ramp, run_closed_loop, run_ramped_closed_loop
from sandwich.bench.report import Verdict, downsample, judge, judge_zero, per_second, percentiles, within
from sandwich.platform.settings import SERVICES, Broker, Flow, Settings

ORDER_PRICE = 100  # kopecks: cheap, so one deposit pays for many orders
DEPOSIT = 10_000_000  # the most one deposit may be (API.md)
ORDERS_PER_CUSTOMER = 150  # per phase: under what GET /api/v1/orders lists (200)
BENCH_ADMIN = "bench-admin"


@dataclass
class Durations:
    """How long each kind of phase runs (seconds)."""

    closed: float = 5.0  # held, after a ramp of up to RAMP_LEVELS steps of `ramp_step`
    ramp_step: float = 2.5
    open: float = 10.0
    fault: float = 12.0
    down_for: float = 10.0
    settle: float = 15.0  # then an unsettled phase is looked at again at the end of its flow
    floors: float = 3.0
    sample_limit: int = 200

    @classmethod
    def quick(cls) -> Durations:
        return cls(
            closed=5.0,
            ramp_step=2.0,
            open=6.0,
            fault=10.0,
            down_for=5.0,
            settle=30.0,
            floors=1.5,
            sample_limit=60,
        )


@dataclass
class Target:
    """The platform under load and what the benchmark knows of it."""

    flow: str
    gateway_url: str
    service_urls: dict[str, str]
    groups: Callable[[], Mapping[str, Sequence[int]]]
    mail_dir: Path | None
    database_url: str | None
    platform: Any = None  # sandwich.supervisor.Platform when self-started
    admin: tuple[str, str] | None = None
    data_dir: Path | None = None  # removed after the run when self-started
    broker: str | None = None  # nats | kafka; None: none runs (sync) or not known

    @property
    def self_started(self) -> bool:
        return self.platform is not None


@dataclass
class DonePhase:
    """A phase already measured, kept for the check at the end of its flow."""

    result: dict[str, Any]
    records: list[Record]
    wall0: float
    ended: float  # monotonic


@dataclass
class Context:
    target: Target
    client: Http
    customers: list[Customer]
    menu_item_id: str
    console: Console
    durations: Durations
    sampler: ResourceSampler
    orders_placed: int = 0
    notes: list[str] = field(default_factory=list)
    done: list[DonePhase] = field(default_factory=list)


# -- the platform ----------------------------------------------------------------------------------


def start_platform(
    flow: str,
    base_dir: Path,
    console: Console,
    *,
    broker: Broker | str = Broker.NATS,
    ready_timeout: float = 90.0,
    extra_env: Mapping[str, str] | None = None,
) -> Target:
    """A fresh platform of `flow` on the embedded engines (PostgreSQL and `broker`), in a directory
    of its own under base_dir. `ready_timeout` is raised for a broker that starts slowly (Kafka: its
    first start on a machine may also fetch its jars)."""
    from sandwich.supervisor import Platform

    data_dir = base_dir / f"platform-{flow}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    password = secrets.token_urlsafe(16)
    env = {
        "SANDWICH_ADMIN_USERNAME": BENCH_ADMIN,
        "SANDWICH_ADMIN_PASSWORD": password,
        "SANDWICH_LOGIN_RATE": "1000000",
        "SANDWICH_LOGIN_FAILURES": "1000000",
        "SANDWICH_LOGIN_ACCOUNT_FAILURES": "1000000",
        "SANDWICH_REGISTER_RATE": "1000000",
        "DATABASE_URL": "",
        "NATS_URL": "",
        "KAFKA_BOOTSTRAP_SERVERS": "",
        **(extra_env or {}),
    }
    platform = Platform(
        data_dir,
        flow,
        env_overrides=env,
        ready_timeout=brokers_mod.ready_timeout(broker, ready_timeout),
        broker=broker,
    )
    began = time.monotonic()
    try:
        platform.start()
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    console.log(
        f"[green]{flow}[/] platform{f' on {kind}' if (kind := broker_kind(platform)) else ''} ready in "
        f"{time.monotonic() - began:.1f}s at {platform.gateway_url}"
    )

    def groups() -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for name in (*SERVICES, "mailsink"):
            with contextlib.suppress(Exception):
                pid = platform.service_pid(name)
                if pid is not None:
                    found[name] = [pid]
        if platform.postgres is not None and platform.postgres.pid is not None:
            found["postgres"] = [platform.postgres.pid]
        if platform.broker is not None and platform.broker.pid is not None:
            found[platform.broker_kind.value] = [platform.broker.pid]  # nats | kafka
        return found

    return Target(
        flow=flow,
        gateway_url=platform.gateway_url,
        service_urls={name: platform.service_url(name) for name in SERVICES},
        groups=groups,
        mail_dir=platform.mail_dir,
        database_url=platform.database_url,
        platform=platform,
        admin=(BENCH_ADMIN, password),
        data_dir=data_dir,
        broker=broker_kind(platform),
    )


def broker_kind(platform: Any) -> str | None:
    """nats | kafka: the broker a self-started platform runs; None in sync (none runs)."""
    return None if platform.flow is Flow.SYNC else str(platform.broker_kind.value)


def stop_platform(target: Target, *, keep: bool = False) -> None:
    if target.platform is not None:
        target.platform.stop()
        if not keep and target.data_dir is not None:
            shutil.rmtree(target.data_dir, ignore_errors=True)


def attach_platform(url: str, data_dir: Path | None, admin: tuple[str, str] | None) -> Target:
    """A platform already running at `url`: its services, pids, database and mail sink are found
    where possible (the gateway process's environment, DATA_DIR/platform.json)."""
    service_urls, discovered = discover_platform(url)
    cached: dict[str, Any] = {"at": 0.0, "groups": {}}

    def groups() -> Mapping[str, Sequence[int]]:
        if time.monotonic() - cached["at"] > 5.0:
            cached["groups"] = discovered()
            cached["at"] = time.monotonic()
        result: Mapping[str, Sequence[int]] = cached["groups"]
        return result

    info: dict[str, str] = {}
    if data_dir is not None and (data_dir / "platform.json").exists():
        with contextlib.suppress(OSError, ValueError):
            info = json.loads((data_dir / "platform.json").read_text())
    if admin is None and data_dir is not None and (data_dir / "demo-credentials.json").exists():
        with contextlib.suppress(OSError, ValueError, KeyError):
            stored = json.loads((data_dir / "demo-credentials.json").read_text())
            admin = (stored["admin"]["username"], stored["admin"]["password"])
    mail_dir = data_dir / "mail" if data_dir is not None and (data_dir / "mail").is_dir() else None
    return Target(
        flow=info.get("flow", "unknown"),
        gateway_url=url.rstrip("/"),
        service_urls=service_urls,
        groups=groups,
        mail_dir=mail_dir,
        database_url=info.get("database_url") or None,
        admin=admin,
        broker="kafka" if info.get("kafka_bootstrap_servers") else "nats" if info.get("nats_url") else None,
    )


async def prepare(
    target: Target, console: Console, durations: Durations, customers: int, concurrency: int
) -> Context:
    """The bench's menu item and `customers` funded customers; the resource sampler running."""
    client = client_for(target.gateway_url, concurrency + 32)
    try:
        item_id: str
        if target.admin is not None:
            admin_token = await login(client, *target.admin, timeout=60.0)
            item_id = await create_menu_item(client, admin_token, ORDER_PRICE)
        else:
            someone = await setup_customers(client, 1, deposit=0)
            item_id, price = await first_menu_item(client, someone[0].token)
            console.log(f"[yellow]no admin given: ordering the first menu item ({price} kopecks)")
        began = time.monotonic()
        with console.status(f"registering and funding {customers} customers ...") as status:
            people = await setup_customers(
                client,
                customers,
                deposit=DEPOSIT,
                on_progress=lambda done, total: status.update(
                    f"customers: {done}/{total} registered and funded"
                ),
            )
        console.log(f"{customers} customers registered and funded in {time.monotonic() - began:.1f}s")
    except BaseException:
        await client.aclose()
        raise
    sampler = ResourceSampler(target.groups)
    sampler.start()
    return Context(target, client, people, item_id, console, durations, sampler)


def customers_needed(orders: float, floor: int) -> int:
    return max(floor, math.ceil(orders / ORDERS_PER_CUSTOMER))


# -- one phase -------------------------------------------------------------------------------------


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
            "billing_operate": _billing_operate(after, before),
            "fault_delay": _fault_delay(after, before),
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
        f"p50 {_ms(create['latency']['p50'])} p99 {_ms(create['latency']['p99'])} ms, "
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


def platform_total(resources: Mapping[str, Mapping[str, float]], figure: str) -> float:
    """A figure summed over the platform's processes (not the load generator, not other programs)."""
    return sum(v[figure] for k, v in resources.items() if k not in (BENCH_GROUP, OTHER_GROUP))


def cpu_per_order(resources: Mapping[str, Mapping[str, float]], orders: int) -> dict[str, float | None]:
    """The platform's CPU seconds per order (every process of it: services, PostgreSQL, the broker, the
    mail sink), and the throughput that allows on this machine's cores if nothing else ran: a figure
    that other programs on the machine disturb much less than the throughput itself."""
    platform_cpu = platform_total(resources, "cpu_seconds")
    cores = os.cpu_count() or 1
    per_order = platform_cpu / orders if orders else None
    return {
        "platform_cpu_s": round(platform_cpu, 2),
        "platform_cpu_ms_per_order": round(1000 * per_order, 2) if per_order else None,
        "cpu_bound_ceiling_orders_per_s": round(cores / per_order, 1) if per_order else None,
        "bench_cpu_percent": (resources.get(BENCH_GROUP) or {}).get("cpu_percent"),
        "other_processes_cpu_percent": (resources.get(OTHER_GROUP) or {}).get("cpu_percent"),
    }


OPERATE_LATENCY = "http_request_duration_seconds{operate"
FAULT_DELAY_METRIC = "fault_delay_seconds"
SCRAPED = (PUBLISH_LAG_METRIC, CONSUME_LAG_METRIC, HANDLE_METRIC, OPERATE_LATENCY, FAULT_DELAY_METRIC)


def _billing_operate(after: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any] | None:
    """How long billing took to answer POST /billing/account/operate in the phase (its own metric):
    shows whether the 200 ms fault was in effect."""
    delta = histogram_delta(
        {OPERATE_LATENCY: {"billing": after.get(OPERATE_LATENCY, {}).get("billing")}}
        if after.get(OPERATE_LATENCY, {}).get("billing")
        else {},
        before,
        OPERATE_LATENCY,
    )[0]
    return delta.as_dict() if delta is not None else None


def _fault_delay(after: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any] | None:
    """The delays billing injected in the phase (its own metric, whichever route or consumer paid)."""
    delta = histogram_delta(after, before, FAULT_DELAY_METRIC)[0]
    return delta.as_dict() if delta is not None else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def held(records: Sequence[Record], since: float) -> list[Record]:
    """The orders decided from phase second `since` on, with their times counted from there: what a
    ramped closed loop measures (its hold), the orders of the climb before it left out. An order sent
    before the hold but answered or paid within it is in (the hold's rates count it); `summarize`
    takes everything else only from the orders sent within."""
    if since <= 0:
        return list(records)
    return [
        replace(
            r,
            t_sched=r.t_sched - since,
            t_sent=r.t_sent - since,
            t_final=r.t_final - since if r.t_final is not None else None,
        )
        for r in records
        if r.decided_at >= since
    ]


def summarize(
    records: Sequence[Record],
    outcomes: Outcomes,
    wall0: float,
    duration: float,
    sampled: Mapping[str, Any],
    publish_lag: tuple[Any, Mapping[str, Any]],
    consume_lag: tuple[Any, Mapping[str, Any]],
    handle_time: tuple[Any, Mapping[str, Any]] = (None, {}),
) -> dict[str, Any]:
    """The numbers of one phase from its records and what the platform said about its orders.

    Rates count what happened within [0, `duration`] (answers, payments) whenever the order was
    sent; everything else is about the orders sent within it: a ramp's hold (`held`) begins with
    orders of the climb in flight, sent at another level."""
    every_ok = [r for r in records if r.ok]
    done_in_time = [r for r in every_ok if 0.0 <= r.t_sched + r.latency <= duration]
    sent_within = [r for r in records if r.t_sched >= 0.0]
    ok = [r for r in sent_within if r.ok]
    errors = Counter(r.error for r in sent_within if r.error)
    create_latencies = [r.latency for r in ok]

    create_to_paid: list[float] = []
    paid_times: list[float] = []
    to_notification: list[float] = []
    to_letter: list[float] = []
    consumer_lag: list[float] = []
    paid_count = 0
    by_order = {r.order_id: r for r in every_ok if r.order_id}
    for order_id, record in by_order.items():
        view = outcomes.orders.get(order_id)
        if view is None or view.status != "paid" or view.updated_at is None:
            continue
        paid_at = view.updated_at
        paid_times.append(paid_at - wall0)
        if record.t_sched < 0.0:
            continue  # sent before a hold: counted as paid within it, its latencies left out
        paid_count += 1
        create_to_paid.append(paid_at - record.wall_sched)
        notes = outcomes.notifications.get((order_id, "order_paid"))
        if notes:
            to_notification.append(min(notes) - record.wall_sched)
            consumer_lag.append(min(notes) - paid_at)
        letters = outcomes.letters.get((order_id, "order_paid"))
        if letters:
            to_letter.append(min(letters) - record.wall_sched)
    publish_total, publish_by_service = publish_lag
    consume_total, consume_by_service = consume_lag
    return {
        "create": {
            "sent": len(sent_within),
            "ok": len(ok),
            "success_rate": len(ok) / len(sent_within) if sent_within else 0.0,
            "orders_per_s": len(done_in_time) / duration,
            "latency": percentiles(create_latencies),
            "latency_of_failures": percentiles(r.latency for r in sent_within if not r.ok),
            "errors": dict(errors),
            "status_in_answer": dict(Counter(r.order_status for r in ok)),
            "http_status": dict(Counter(str(r.status) for r in sent_within)),
        },
        "paid": {
            "count": paid_count,
            "orders_per_s": sum(1 for t in paid_times if 0.0 <= t <= duration) / duration,
            "create_to_paid": percentiles(create_to_paid),
        },
        "letter": {
            "create_to_order_paid_notification": percentiles(to_notification),
            "create_to_letter": percentiles(to_letter),
        },
        "followed": {
            "count": sum(1 for r in ok if r.t_final is not None),
            "create_to_decided": percentiles(r.t_final - r.t_sched for r in ok if r.t_final is not None),
        },
        "client_visible": {
            "sampled": sampled.get("sampled", 0),
            "gave_up": sampled.get("gave_up", 0),
            "not_followed_to_the_end": sampled.get("not_followed_to_the_end", 0),
            "requests": sampled.get("requests", 0),
            "create_to_seen_paid": percentiles(sampled.get("seen_paid_s", ())),
            "create_to_seen_order_paid_notification": percentiles(
                sampled.get("seen_order_paid_notification_s", ())
            ),
        },
        "event_lag": {
            "commit_to_consumer": percentiles(consumer_lag),
            "commit_to_consumer_source": "order paid at (orders) -> order_paid notification created at (notifications)",
            "publish": publish_total.as_dict() if publish_total is not None else None,
            "publish_by_service": {s: h.as_dict() for s, h in publish_by_service.items()},
            "consume_metric": consume_total.as_dict() if consume_total is not None else None,
            "consume_metric_by_service": {s: h.as_dict() for s, h in consume_by_service.items()},
            "handle_metric_by_service": {s: h.as_dict() for s, h in handle_time[1].items()},
        },
        "timeseries": {
            "ok": per_second((r.t_sched + r.latency for r in ok), duration),
            "errors": per_second((r.t_sched + r.latency for r in sent_within if not r.ok), duration),
            "paid": per_second(paid_times, duration),
        },
        "samples": {
            "create_latencies_s": downsample(create_latencies, 4000),
            "create_to_paid_s": downsample(create_to_paid, 4000),
        },
    }


# -- idle memory and the floors --------------------------------------------------------------------


async def idle_memory(ctx: Context, settle: float = 3.0) -> dict[str, dict[str, float]]:
    await asyncio.sleep(settle)
    memory = await asyncio.to_thread(ctx.sampler.memory_now)
    total_rss = sum(g["rss_mb"] for g in memory.values())
    total_pss = sum(g["pss_mb"] for g in memory.values())
    ctx.console.log(f"[{ctx.target.flow}] idle memory: RSS {total_rss:.0f} MB, PSS {total_pss:.0f} MB")
    return memory


async def measure_floors(ctx: Context, duration: float) -> dict[str, Any]:
    console = ctx.console
    floors: dict[str, Any] = {}
    if ctx.target.database_url:
        with console.status("floor 1: the database work of one order, one process ..."):
            try:
                floors["database"] = await database_floor(
                    ctx.target.database_url, duration=duration, concurrency=32
                )
                console.log(f"floor: database work {floors['database']['orders_per_s']:.0f} orders/s")
            except Exception as exc:
                floors["database_error"] = repr(exc)
                console.log(f"[red]database floor failed: {exc!r}")
    service = "menu" if "menu" in ctx.target.service_urls else next(iter(ctx.target.service_urls), None)
    service_url = ctx.target.service_urls[service] if service is not None else None
    with console.status("floor 2: a bare HTTP hop, the direct call and the platform's own hop ..."):
        try:
            floors["http"], own = await http_floor(duration=duration, platform_url=service_url)
            console.log(
                f"floor: direct {floors['http']['direct']['requests_per_s']:.0f}/s, bare hop "
                f"{floors['http']['hop']['requests_per_s']:.0f}/s"
            )
            if own is not None:
                floors["platform_hop"] = {**own, "service": service}
                console.log(f"platform hop ({service}): {own['requests_per_s']:.0f}/s")
        except Exception as exc:
            floors["http_error"] = repr(exc)
            console.log(f"[red]HTTP floor failed: {exc!r}")
    with console.status("floor 3: the machine (interpreter speed, loopback round trip) ..."):
        try:
            floors["machine"] = machine = await machine_floor()
            console.log(
                f"floor: Python loop {machine['python_loop_s'] * 1000:.0f} ms, loopback round trip "
                f"p50 {machine['round_trip']['p50'] * 1e6:.0f} us"
            )
        except Exception as exc:
            floors["machine_error"] = repr(exc)
            console.log(f"[red]machine floor failed: {exc!r}")
    return floors


def floor_ratios(floors: Mapping[str, Any], phases: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Each flow's best throughput as a share of the database floor; the platform's hop as a share
    of the bare hop and of the direct call."""
    out: dict[str, Any] = {"lines": []}
    db = (floors.get("database") or {}).get("orders_per_s")
    if db:
        best: dict[str, float] = {}
        for phase in phases:
            if (phase.get("fault") or None) is None:
                flow = str(phase["flow"])
                # paid, not accepted: the async flow's 202 is not an order done
                best[flow] = max(best.get(flow, 0.0), phase["paid"]["orders_per_s"])
        out["flow_to_database_floor"] = {flow: round(v / db, 3) for flow, v in best.items()}
        for flow, value in best.items():
            out["lines"].append(
                f"{flow}: {value:.0f} orders/s = {100 * value / db:.1f}% of the database floor ({db:.0f}/s)"
            )
    http = floors.get("http") or {}
    hop = (floors.get("platform_hop") or {}).get("requests_per_s")
    if http:
        bare = http["hop"]["requests_per_s"]
        direct = http["direct"]["requests_per_s"]
        out["bare_hop_to_direct"] = round(bare / direct, 3) if direct else None
        out["lines"].append(
            f"bare hop {bare:.0f}/s = {100 * bare / direct:.0f}% of the direct call ({direct:.0f}/s)"
        )
        if hop:
            out["platform_hop_to_bare_hop"] = round(hop / bare, 3) if bare else None
            out["platform_hop_to_direct"] = round(hop / direct, 3) if direct else None
            out["lines"].append(
                f"platform hop {hop:.0f}/s = {100 * hop / bare:.0f}% of the bare hop, {100 * hop / direct:.0f}% of the direct call"
            )
    return out


# -- targets ---------------------------------------------------------------------------------------


def _ceiling_note(phase: Mapping[str, Any]) -> str:
    cpu = phase.get("cpu") or {}
    if not cpu.get("platform_cpu_ms_per_order"):
        return ""
    return (
        f"the platform used {cpu['platform_cpu_ms_per_order']:.1f} ms of CPU per order: at most "
        f"{cpu['cpu_bound_ceiling_orders_per_s']:.0f} orders/s on {os.cpu_count()} cores if nothing else ran "
        f"(other programs took {cpu.get('other_processes_cpu_percent') or 0:.0f}% of a core, the load "
        f"generator {cpu.get('bench_cpu_percent') or 0:.0f}%)"
    )


def targets(
    phases: Sequence[Mapping[str, Any]],
    floors: Mapping[str, Any],
    idle: Mapping[str, Mapping[str, Mapping[str, float]]],
    *,
    compare: bool,
    wall_time: float | None,
    scale: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None,
    wall_note: str = "",
) -> list[Verdict]:
    """The issue's targets, judged on this run's phases (`wall_note`: said of the run's wall time)."""
    verdicts: list[Verdict] = []
    best = find(phases, "hybrid", "max throughput")
    if best is not None:
        clean = not best["create"]["errors"]
        verdicts.append(
            judge(
                "hybrid sustains >= 300 orders/s create->paid with no errors",
                best["paid"]["orders_per_s"],
                ">=",
                300,
                unit="orders/s",
                note=("" if clean else f"with errors {best['create']['errors']}; ") + _ceiling_note(best),
            )
        )
        if not clean:
            verdicts[-1] = Verdict(
                verdicts[-1].name, verdicts[-1].target, verdicts[-1].measured, False, verdicts[-1].by
            )
    at100 = at_target_rate(phases)
    if at100 is not None and at100.get("mode") == "open":
        rate = at100.get("rate")
        verdicts.append(
            judge(
                f"create p99 < 100 ms at {rate:g} orders/s (hybrid)",
                at100["create"]["latency"]["p99"],
                "<",
                0.1,
                unit="ms",
                scale=1000,
            )
        )
        by_histogram, by_timestamps = event_lag_p99(at100)
        value = by_histogram if by_histogram is not None else by_timestamps
        source = (
            f"metric {CONSUME_LAG_METRIC}, all consumers, estimated from its buckets; the platform's own "
            f"timestamps (paid -> notification created) give p99 {_ms(by_timestamps)} ms"
            if by_histogram is not None
            else "platform timestamps: paid -> notification created"
        )
        verdicts.append(
            judge(
                f"event lag (commit -> consumer) p99 < 20 ms at {rate:g} orders/s (hybrid)",
                value,
                "<",
                0.02,
                unit="ms",
                scale=1000,
                note=source,
            )
        )
    ratios = floor_ratios(floors, phases)
    if "platform_hop_to_direct" in ratios:
        verdicts.append(
            judge(
                "one inter-service hop >= 40% of the direct call's throughput",
                ratios["platform_hop_to_direct"],
                ">=",
                0.4,
                unit="%",
                scale=100,
            )
        )
    for flow, groups in idle.items():
        # Resident memory of the whole platform is its PSS: the sum of RSS counts every shared page
        # (PostgreSQL's shared buffers, the interpreter's libraries) once per process that maps it,
        # which is memory the machine does not spend. Both are reported.
        rss = sum(g["rss_mb"] for name, g in groups.items() if name != "bench") / 1024
        pss = sum(g["pss_mb"] for name, g in groups.items() if name != "bench") / 1024
        verdicts.append(
            judge(
                f"the whole platform idles under 1.0 GB resident memory, PSS ({flow})",
                pss,
                "<",
                1.0,
                unit="GB",
                note=f"summed RSS {rss:.2f} GB, which counts shared pages once per process",
            )
        )
    if scale is not None:
        first, second = scale
        verdicts.append(
            within(
                "throughput within 10% from 1,000 to 100,000 orders in the databases",
                first["paid"]["orders_per_s"],
                second["paid"]["orders_per_s"],
                0.10,
                note=f"measured at {first['orders_in_db_before']} and {second['orders_in_db_before']} orders; "
                "judged only with 90,000 or more in the second (`sandwich bench --scale 100000` fills "
                "that many; --compare's 10 minutes cannot)",
                judged=second["orders_in_db_before"] >= 90_000,
            )
        )
    if compare:
        fault_phases = [p for p in phases if p.get("fault")]
        for key, what in (
            ("unfinished", "orders unfinished after recovery"),
            ("duplicate_charges", "duplicate charges"),
        ):
            count = sum(int(p["after_recovery"].get(key) or 0) for p in fault_phases)
            verdicts.append(judge_zero(f"under every fault: {what}", count if fault_phases else None, what))
        letters = sum(
            int(p["after_recovery"].get("duplicate_notifications") or 0)
            + int(p["after_recovery"].get("duplicate_letters") or 0)
            for p in fault_phases
        )
        verdicts.append(
            judge_zero(
                "under every fault: duplicate letters", letters if fault_phases else None, "duplicate letters"
            )
        )
        for flow in ("hybrid", "async", "sync"):
            healthy = find(phases, flow, "healthy")
            down = find(phases, flow, "notifications down")
            if healthy is None or down is None:
                continue
            h, d = healthy["create"]["success_rate"], down["create"]["success_rate"]
            if flow == "sync":
                verdicts.append(
                    Verdict(
                        "sync: notifications down lowers the success rate",
                        "lower than healthy",
                        f"{100 * h:.1f}% -> {100 * d:.1f}%",
                        d < h,
                        "as expected" if d < h else "missed: it did not",
                    )
                )
            else:
                verdicts.append(
                    Verdict(
                        f"{flow}: notifications down does not lower the success rate",
                        "not lower than healthy",
                        f"{100 * h:.1f}% -> {100 * d:.1f}%",
                        d >= h,
                        "met" if d >= h else f"missed: {100 * (h - d):.1f} points lower",
                    )
                )
        if wall_time is not None:
            verdicts.append(
                judge(
                    "--compare completes within 10 minutes",
                    wall_time / 60,
                    "<=",
                    10.0,
                    unit="min",
                    note=wall_note,
                )
            )
    return verdicts


# -- the two commands ------------------------------------------------------------------------------


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
    if options.url:
        target = attach_platform(
            options.url, options.data_dir if options.data_dir.exists() else None, options.admin
        )
        if target.flow == "unknown":
            target.flow = options.flow
    elif options.scale_to:
        # A waiting order is cancelled (and refunded) after the assignment timeout; the bench's
        # orders never find a food point, and that background work must not fall into one
        # measurement and not the other.
        target = await asyncio.to_thread(
            partial(
                start_platform,
                options.flow,
                base,
                console,
                broker=options.broker,
                extra_env={"SANDWICH_ASSIGNMENT_TIMEOUT": "86400"},
            )
        )
    else:
        target = await asyncio.to_thread(
            partial(start_platform, options.flow, base, console, broker=options.broker)
        )
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
        if options.scale_to:
            result["scale"] = await run_scale(
                ctx, options.scale_to, options.customers or 32, options.duration
            )
            result["phases"].extend(result["scale"].pop("phases"))
        elif options.rate:
            result["phases"].append(
                await run_phase(
                    ctx,
                    scenario="healthy",
                    mode="open",
                    duration=options.duration,
                    rate=options.rate,
                    settle_timeout=30.0,
                    profile_dir=base / f"profile-{time.strftime('%H%M%S')}-open" if options.profile else None,
                )
            )
        if options.customers and not options.scale_to:
            result["phases"].append(
                await run_phase(
                    ctx,
                    scenario="max throughput",
                    mode="closed",
                    duration=options.duration,
                    virtual_customers=options.customers,
                    settle_timeout=30.0,
                    profile_dir=base / f"profile-{time.strftime('%H%M%S')}-closed"
                    if options.profile
                    else None,
                )
            )
        await final_check(ctx, 30.0)
    finally:
        if ctx is not None:
            ctx.sampler.stop()
            await ctx.client.aclose()
        await asyncio.to_thread(stop_platform, target, keep=options.keep_data)
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
    result["wall_time_s"] = round(time.monotonic() - began, 1)
    result["platform_note"] = _platform_note(target)
    result["generator_note"] = GENERATOR_NOTE
    return result


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


def _platform_note(target: Target) -> str:
    if target.self_started:
        server = Settings().asgi_server.value  # what the self-started services inherit (SANDWICH_ASGI_SERVER)
        engines = brokers_mod.engines_note([target.broker] if target.broker else [])
        return f"self-started, {engines}, every service its own process under {server}"
    on = f" ({brokers_mod.broker_name(target.broker)})" if target.broker else ""
    return f"running platform at {target.gateway_url}{on}"
