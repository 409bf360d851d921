"""`sandwich bench --compare`: every flow healthy and under each fault, with the floors measured once
and the targets judged; with `--brokers`, hybrid's broker figures on each further broker too.

A leg is one flow on one broker: a platform of its own, its customers, its phases in order, and a
last look at its unsettled phases before the platform stops. The compare's legs are every flow on
the first broker; each further broker adds a leg of hybrid's max-throughput ramp and its phase at
the target rate (`broker_plan`), run right after hybrid on the first broker so that the two are
measured as close together as the run allows. The whole run keeps to a time budget: each phase's
recovery wait is cut so that what is still planned fits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console

from sandwich.bench import brokers as brokers_mod
from sandwich.bench import faults as faults_mod
from sandwich.bench.context import Context, Durations, customers_needed, idle_memory, measure_floors, prepare
from sandwich.bench.faults import Fault
from sandwich.bench.figures import TARGET_RATE
from sandwich.bench.phase import final_check, run_phase
from sandwich.bench.ramp import Ramp
from sandwich.bench.runner import GENERATOR_NOTE, SCALE_SCENARIO
from sandwich.bench.target import start_platform, stop_platform
from sandwich.bench.verdicts import floor_ratios, targets
from sandwich.platform.settings import Broker, Flow, Settings

RAMP_LEVELS = 2
"""--compare's max-throughput phases try twice and four times --customers virtual customers (32, the
default, left the platform short of work even on a fast host: 140 orders/s at 195 ms p50)."""
TARGET_PHASE_LENGTH = 1.5  # the targets' phase runs this many times as long as a healthy one
PHASE_OVERHEAD_S = 6.0  # around each phase: waiting for a quiet platform, reading its outcomes
FLOW_OVERHEAD_S = 35.0  # start a platform, register customers, measure idle memory, stop it
FINAL_CHECK_S = 20.0  # kept per flow for the look at unsettled phases before its platform stops
FAULT_OVERHEAD_S = 6.0  # restarting what was killed, waiting until it is ready


@dataclass
class PlannedPhase:
    scenario: str
    mode: str
    duration: float
    rate: float | None = None
    virtual_customers: int | None = None
    ramp: Ramp | None = None  # closed loop: the number of virtual customers is found first
    fault: Fault | None = None
    optional: bool = False  # run only if the budget allows
    why_not: str | None = None  # not run, and why
    profile: bool = False  # py-spy on the busiest services while it runs (where the time goes)

    @property
    def cost(self) -> float:
        if self.why_not is not None:
            return 0.0
        climb = self.ramp.longest_climb if self.ramp is not None else 0.0
        return (
            climb + self.duration + PHASE_OVERHEAD_S + (FAULT_OVERHEAD_S if self.fault is not None else 1.0)
        )


def plan(flow: str, options: CompareOptions, durations: Durations) -> list[PlannedPhase]:
    """The phases of one flow in --compare, in order."""
    levels = tuple(options.customers * 2**i for i in range(1, RAMP_LEVELS + 1))
    steps = [
        PlannedPhase(
            "max throughput",
            "closed",
            durations.closed,
            ramp=Ramp(levels, durations.ramp_step),
        ),
        PlannedPhase("healthy", "open", durations.open, rate=options.rate),
    ]
    if flow == "hybrid" and options.rate != options.target_rate:
        # The targets' phase runs longer (TARGET_PHASE_LENGTH) and unprofiled (py-spy sampling the services is load
        # of its own); where the time goes is sampled in a phase of its own right after it.
        steps.append(
            PlannedPhase(
                f"healthy at {options.target_rate:g}/s",
                "open",
                TARGET_PHASE_LENGTH * durations.open,
                rate=options.target_rate,
            )
        )
        steps.append(
            PlannedPhase(
                f"healthy at {options.target_rate:g}/s, profiled",
                "open",
                durations.open,
                rate=options.target_rate,
                profile=True,
            )
        )
    for fault in faults_mod.scenarios(durations.fault, down_for=durations.down_for):
        steps.append(
            PlannedPhase(
                fault.title.split(" for ")[0],
                "open",
                durations.fault,
                rate=options.rate,
                fault=fault,
                why_not=fault.applies(Flow(flow)),
            )
        )
    if flow == "hybrid":
        steps.append(
            PlannedPhase(
                SCALE_SCENARIO, "closed", durations.closed, virtual_customers=options.customers, optional=True
            )
        )
    return steps


def broker_plan(options: CompareOptions, durations: Durations) -> list[PlannedPhase]:
    """Hybrid's phases on a further broker: what the broker comparison quotes (the max-throughput
    ramp, the unprofiled phase at the target rate), planned as the compare plans them."""
    return [
        step
        for step in plan("hybrid", options, durations)
        if step.scenario == "max throughput"
        or (step.rate == options.target_rate and step.fault is None and not step.profile)
    ]


@dataclass
class CompareOptions:
    flows: Sequence[str]
    data_dir: Path
    rate: float = 50.0  # healthy and fault phases: one rate, so their success rates compare
    target_rate: float = TARGET_RATE  # the latency targets are quoted at this rate (hybrid)
    customers: int = 32
    quick: bool = False
    keep_data: bool = False
    budget_s: float = 530.0  # the whole run must finish within 10 minutes, on a slow and noisy host too
    # The first broker runs the whole compare; each further one hybrid's broker phases (broker_plan).
    brokers: Sequence[Broker] = (Broker.NATS,)
    broker_budget_s: float = 150.0  # the time budget of each further broker's leg


@dataclass
class Leg:
    """One flow on one broker: a platform of its own and the phases planned for it."""

    flow: str
    broker: Broker
    steps: list[PlannedPhase]
    main: bool = True  # one of the compare's flows (else hybrid's phases on a further broker)
    started: bool = False
    checked: bool = False  # its final check is done (or will never come)

    @property
    def name(self) -> str:
        return self.flow if self.main else f"{self.flow} on {self.broker.value}"

    @property
    def overhead(self) -> float:
        """Seconds to start its platform, register its customers, measure idle memory, stop it."""
        return FLOW_OVERHEAD_S + brokers_mod.start_stop_overhead(self.broker)


def legs(options: CompareOptions, durations: Durations) -> list[Leg]:
    """The run's legs in order: every flow on the first broker, each further broker's hybrid leg
    right after the first broker's hybrid (at the end when hybrid is not compared)."""
    first, *others = options.brokers
    extra = [Leg("hybrid", broker, broker_plan(options, durations), main=False) for broker in others]
    out: list[Leg] = []
    for flow in options.flows:
        out.append(Leg(flow, first, plan(flow, options, durations)))
        if flow == "hybrid":
            out += extra
    if "hybrid" not in options.flows:
        out += extra
    return out


class CompareRun:
    """One `--compare`: its legs, its result and its time budget."""

    def __init__(self, options: CompareOptions, console: Console) -> None:
        from sandwich.bench.report import machine

        self.options, self.console = options, console
        self.began = time.monotonic()
        self.durations = Durations.quick() if options.quick else Durations()
        self.base = options.data_dir / "bench"
        self.legs = legs(options, self.durations)
        brokers = [b.value for b in options.brokers]
        self.deadline = self.began + options.budget_s + options.broker_budget_s * (len(brokers) - 1)
        self.result: dict[str, Any] = {
            "machine": machine(),
            "compare": True,
            "broker": brokers[0],
            "phases": [],
            "skipped": {},
            "idle_memory": {},
            "floors": {},
            "notes": [],
        }
        self.comparison: dict[str, Any] | None = None
        if len(brokers) > 1:
            self.comparison = {
                "brokers": brokers,
                "phases": [],
                "idle_memory": {},
                "skipped": {},
                "wall_time_s": 0.0,
            }
            self.result["broker_comparison"] = self.comparison
        self.scale_pair: tuple[dict[str, Any], dict[str, Any]] | None = None

    def remaining_load(self) -> float:
        """Seconds the phases still planned will take, recovery not counted."""
        phases_left = sum(p.cost for leg in self.legs for p in leg.steps if not p.optional)
        overheads = sum(leg.overhead for leg in self.legs if not leg.started)
        return phases_left + overheads + FINAL_CHECK_S * sum(1 for leg in self.legs if not leg.checked)

    def settle_allowance(self, cap: float) -> float:
        """Recovery time this phase may take so that the rest still fits in the budget."""
        steps = sum(1 for leg in self.legs for p in leg.steps if not p.optional)
        slack = self.deadline - time.monotonic() - self.remaining_load()
        return max(5.0, min(cap, slack / max(1, steps)))

    async def run(self) -> dict[str, Any]:
        self.base.mkdir(parents=True, exist_ok=True)
        for leg in self.legs:
            began = time.monotonic()
            await self.run_leg(leg)
            if not leg.main and self.comparison is not None:
                self.comparison["wall_time_s"] = round(
                    self.comparison["wall_time_s"] + time.monotonic() - began, 1
                )
        return self.finish()

    def skip(self, leg: Leg, reason: str) -> None:
        skipped = (
            self.result["skipped"] if leg.main or self.comparison is None else self.comparison["skipped"]
        )
        skipped[leg.name] = reason
        leg.steps.clear()
        leg.started = leg.checked = True

    async def run_leg(self, leg: Leg) -> None:
        options, console, durations, result = self.options, self.console, self.durations, self.result
        try:
            target = await asyncio.to_thread(
                partial(start_platform, leg.flow, self.base, console, broker=leg.broker, ready_timeout=60.0)
            )
        except Exception as exc:
            reason = f"did not start: {str(exc).splitlines()[0][:300]}"
            console.log(f"[yellow]skipping {leg.name}: {reason}")
            self.skip(leg, reason)
            return
        ctx: Context | None = None
        try:
            expected = max(options.rate * durations.fault, 400 * durations.closed)
            ctx = await prepare(
                target,
                console,
                durations,
                customers_needed(expected, options.customers),
                max(options.customers, int(options.target_rate * 2)) + 32,
            )
            memory = await idle_memory(ctx)
            if leg.main:
                result["idle_memory"][leg.flow] = memory
            elif self.comparison is not None:
                self.comparison["idle_memory"][leg.broker.value] = memory
            if not result["floors"]:
                result["floors"] = await measure_floors(ctx, durations.floors)
            leg.started = True
            await self.run_steps(leg, ctx)
            leg.checked = True
            # This leg's reserve, and half of whatever slack the others do not need.
            slack = self.deadline - time.monotonic() - self.remaining_load()
            await final_check(ctx, max(FINAL_CHECK_S / 2, min(60.0, FINAL_CHECK_S + slack / 2)))
        except Exception as exc:
            console.log(f"[red]{leg.name} failed: {exc!r}")
            self.skip(leg, f"failed while running: {exc!r}"[:400])
        finally:
            if ctx is not None:
                ctx.sampler.stop()
                await ctx.client.aclose()
            await asyncio.to_thread(stop_platform, target, keep=options.keep_data)

    async def run_steps(self, leg: Leg, ctx: Context) -> None:
        phases: list[dict[str, Any]] = (
            self.result["phases"] if leg.main or self.comparison is None else self.comparison["phases"]
        )
        notes: list[str] = self.result["notes"]
        first: dict[str, Any] | None = None
        while leg.steps:
            step = leg.steps.pop(0)
            if step.why_not is not None:
                notes.append(f"{leg.name}: {step.scenario} not run: {step.why_not}")
                continue
            if step.optional:
                slack = self.deadline - time.monotonic() - self.remaining_load()
                if slack < step.cost + 20:
                    notes.append(f"{leg.name}: {step.scenario} not run: out of the time budget")
                    continue
            profile_dir = (
                self.base / f"profile-{time.strftime('%H%M%S')}-{leg.flow}" if step.profile else None
            )
            phase = await run_phase(
                ctx,
                scenario=step.scenario,
                mode=step.mode,
                duration=step.duration,
                rate=step.rate,
                virtual_customers=step.virtual_customers,
                ramp=step.ramp,
                fault=step.fault,
                settle_timeout=self.settle_allowance(self.durations.settle),
                profile_dir=profile_dir,
            )
            phases.append(phase)
            if step.scenario == "max throughput":
                first = phase
                for later in leg.steps:  # measured again with more data: at the concurrency found
                    if later.scenario == SCALE_SCENARIO:
                        later.virtual_customers = phase["virtual_customers"]
            elif step.scenario == SCALE_SCENARIO and first is not None:
                self.scale_pair = (first, phase)

    def finish(self) -> dict[str, Any]:
        result, phases = self.result, self.result["phases"]
        result["notes"].extend(fault_notes(phases))
        wall = time.monotonic() - self.began
        floors = result["floors"]
        if floors:
            floors["ratios"] = floor_ratios(floors, phases)
        result["wall_time_s"] = round(wall, 1)
        # The target is the compare's: the broker comparison's legs are work beyond it.
        extra = self.comparison["wall_time_s"] if self.comparison is not None else 0.0
        result["targets"] = [
            v.as_dict()
            for v in targets(
                phases,
                floors,
                result["idle_memory"],
                compare=True,
                wall_time=wall - extra,
                scale=self.scale_pair,
                wall_note=(
                    f"the broker comparison's {extra:.0f} s not counted ({wall / 60:.1f} min in all)"
                    if extra
                    else ""
                ),
            )
        ]
        if self.comparison is not None:
            self.comparison["rows"] = brokers_mod.comparison_rows(result)
        result["platform_note"] = (
            f"self-started per flow, {brokers_mod.engines_note([b.value for b in self.options.brokers])}, "
            "every service its own process"
        )
        result["generator_note"] = GENERATOR_NOTE
        return result


async def run_compare(options: CompareOptions, console: Console) -> dict[str, Any]:
    """Every flow healthy and under every fault; the floors once; the targets judged; with more than
    one broker, hybrid's broker figures on each further one."""
    return await CompareRun(options, console).run()


def fault_notes(phases: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the report's notes say about the fault phases: whether billing's delay was in effect,
    why users down failed create calls, what failed while injecting or lifting a fault."""
    notes: list[str] = []
    for phase in phases:
        fault_info = phase.get("fault") or {}
        if fault_info.get("name") == "billing_slow":
            delays = phase.get("fault_delay")
            if fault_info.get("in_effect") is False:
                notes.append(
                    f"{phase['flow']}: billing delayed no payment in the slow-billing phase: "
                    f"{faults_mod.FAULT_DELAY_ENV}=200 was not in effect"
                )
            elif delays is not None:
                notes.append(
                    f"{phase['flow']}: in the slow-billing phase billing delayed {delays['count']:.0f} payments "
                    f"by {1000 * delays['p50_s']:.0f} ms (p50)"
                )
        if fault_info.get("name") == "users_down" and phase["create"]["errors"]:
            notes.append(users_down_note(phase))
        for error in fault_info.get("errors") or ():
            notes.append(f"{phase['flow']}, {phase['scenario']}: {error}")
    return notes


def users_down_note(phase: Mapping[str, Any]) -> str:
    """Why orders failed while users was down: no order step asks users, but a letter needs the
    customer's e-mail, which notifications caches for SANDWICH_PROFILE_CACHE_TTL (30 s); in sync the
    create call waits for notifications, so whether it fails depends on how long ago the phase's
    customers were last told something (the phase before, its recovery, the run's speed)."""
    failed = sum(phase["create"]["errors"].values())
    ttl = Settings().profile_cache_ttl_seconds  # the platform the bench starts reads the same variable
    return (
        f"{phase['flow']}: users down failed {failed} of {phase['create']['sent']} create calls: "
        "notifications asks users for the e-mail address of a customer whose contact it has not "
        f"cached in the last {ttl:g} s (SANDWICH_PROFILE_CACHE_TTL), and the create call waits for "
        "notifications; with the contacts still cached from the phase before, none fail"
    )
