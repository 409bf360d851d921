"""The issue's targets, judged on a run's phases, floors and idle memory.

Each target is one `Verdict` (made by `judge`, `judge_zero` or `within`); `targets` lists them in
the order the report shows them."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sandwich.bench.figures import at_target_rate, event_lag_p99, find
from sandwich.bench.metrics import CONSUME_LAG_METRIC
from sandwich.bench.stats import ms


@dataclass(frozen=True)
class Verdict:
    name: str
    target: str
    measured: str
    met: bool | None  # None: not measured in this run
    by: str  # how far from the target, in words

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "measured": self.measured,
            "met": self.met,
            "by": self.by,
        }


def judge(
    name: str,
    value: float | None,
    op: str,
    threshold: float,
    *,
    unit: str = "",
    scale: float = 1.0,
    target: str | None = None,
    note: str = "",
) -> Verdict:
    """Compare `value` with `threshold` (`op` one of >=, >, <=, <), saying by how much it is missed.

    `scale` converts both for display (1000 for seconds shown as ms)."""
    shown_target = target or f"{op} {threshold * scale:g} {unit}".strip()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Verdict(name, shown_target, "not measured", None, note or "not measured in this run")
    met = {
        ">=": value >= threshold,
        ">": value > threshold,
        "<=": value <= threshold,
        "<": value < threshold,
    }[op]
    measured = f"{value * scale:.4g} {unit}".strip()
    if met:
        margin = abs(value - threshold) / abs(threshold) * 100 if threshold else 0.0
        by = f"met with {margin:.0f}% to spare"
    elif op in (">=", ">"):
        short = (threshold - value) / threshold * 100 if threshold else float("inf")
        by = f"missed: {short:.0f}% short ({(threshold - value) * scale:.4g} {unit} below)".replace("  ", " ")
    else:
        over = (value - threshold) / threshold * 100 if threshold else float("inf")
        by = f"missed: {over:.0f}% over ({(value - threshold) * scale:.4g} {unit} above)".replace("  ", " ")
    if note:
        by = f"{by}; {note}"
    return Verdict(name, shown_target, measured, met, by)


def judge_zero(name: str, value: int | None, what: str) -> Verdict:
    if value is None:
        return Verdict(name, f"0 {what}", "not measured", None, "not measured in this run")
    return Verdict(
        name, f"0 {what}", str(value), value == 0, "met" if value == 0 else f"missed: {value} {what}"
    )


def within(
    name: str,
    first: float | None,
    second: float | None,
    tolerance: float,
    note: str = "",
    *,
    judged: bool = True,
) -> Verdict:
    """Throughput stays flat as data grows: met unless `second` is more than `tolerance` below
    `first` (a platform faster with more data has not slowed down; the change is shown either way);
    with judged=False the change is shown without a verdict (not the measurement the target asks for)."""
    target = f"within {tolerance * 100:.0f}%"
    if not first or second is None:
        return Verdict(name, target, "not measured", None, note or "not measured in this run")
    change = (second - first) / first
    met: bool | None = change >= -tolerance if judged else None
    by = f"{change * 100:+.1f}%"
    if met is False:
        by += f": missed by {abs(change) * 100 - tolerance * 100:.1f} points"
    elif met and change > tolerance:
        by += " (faster with more data: no slowdown; the first phase ran on a platform just started)"
    return Verdict(
        name, target, f"{first:.0f} -> {second:.0f} orders/s", met, f"{by}; {note}" if note else by
    )


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


def ceiling_note(phase: Mapping[str, Any]) -> str:
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
    verdicts = _throughput(phases) + _at_target_rate(phases) + _hop(floors, phases) + _idle_memory(idle)
    if scale is not None:
        verdicts.append(_scale(*scale))
    if compare:
        verdicts += _under_faults(phases) + _notifications_down(phases)
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


def _throughput(phases: Sequence[Mapping[str, Any]]) -> list[Verdict]:
    best = find(phases, "hybrid", "max throughput")
    if best is None:
        return []
    clean = not best["create"]["errors"]
    verdict = judge(
        "hybrid sustains >= 300 orders/s create->paid with no errors",
        best["paid"]["orders_per_s"],
        ">=",
        300,
        unit="orders/s",
        note=("" if clean else f"with errors {best['create']['errors']}; ") + ceiling_note(best),
    )
    if not clean:
        verdict = Verdict(verdict.name, verdict.target, verdict.measured, False, verdict.by)
    return [verdict]


def _at_target_rate(phases: Sequence[Mapping[str, Any]]) -> list[Verdict]:
    """Create latency and event lag in the open-loop phase at the targets' rate."""
    at100 = at_target_rate(phases)
    if at100 is None or at100.get("mode") != "open":
        return []
    rate = at100.get("rate")
    by_histogram, by_timestamps = event_lag_p99(at100)
    value = by_histogram if by_histogram is not None else by_timestamps
    source = (
        f"metric {CONSUME_LAG_METRIC}, all consumers, estimated from its buckets; the platform's own "
        f"timestamps (paid -> notification created) give p99 {ms(by_timestamps)} ms"
        if by_histogram is not None
        else "platform timestamps: paid -> notification created"
    )
    return [
        judge(
            f"create p99 < 100 ms at {rate:g} orders/s (hybrid)",
            at100["create"]["latency"]["p99"],
            "<",
            0.1,
            unit="ms",
            scale=1000,
        ),
        judge(
            f"event lag (commit -> consumer) p99 < 20 ms at {rate:g} orders/s (hybrid)",
            value,
            "<",
            0.02,
            unit="ms",
            scale=1000,
            note=source,
        ),
    ]


def _hop(floors: Mapping[str, Any], phases: Sequence[Mapping[str, Any]]) -> list[Verdict]:
    ratios = floor_ratios(floors, phases)
    if "platform_hop_to_direct" not in ratios:
        return []
    return [
        judge(
            "one inter-service hop >= 40% of the direct call's throughput",
            ratios["platform_hop_to_direct"],
            ">=",
            0.4,
            unit="%",
            scale=100,
        )
    ]


def _idle_memory(idle: Mapping[str, Mapping[str, Mapping[str, float]]]) -> list[Verdict]:
    verdicts: list[Verdict] = []
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
    return verdicts


def _scale(first: Mapping[str, Any], second: Mapping[str, Any]) -> Verdict:
    return within(
        "throughput within 10% from 1,000 to 100,000 orders in the databases",
        first["paid"]["orders_per_s"],
        second["paid"]["orders_per_s"],
        0.10,
        note=f"measured at {first['orders_in_db_before']} and {second['orders_in_db_before']} orders; "
        "judged only with 90,000 or more in the second (`sandwich bench --scale 100000` fills "
        "that many; --compare's 10 minutes cannot)",
        judged=second["orders_in_db_before"] >= 90_000,
    )


def _under_faults(phases: Sequence[Mapping[str, Any]]) -> list[Verdict]:
    """Nothing unfinished, charged twice or told twice after any fault's recovery."""
    fault_phases = [p for p in phases if p.get("fault")]
    verdicts: list[Verdict] = []
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
    return verdicts


def _notifications_down(phases: Sequence[Mapping[str, Any]]) -> list[Verdict]:
    """Sync answers an order only once notified, so its success rate drops; the others' must not."""
    verdicts: list[Verdict] = []
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
    return verdicts
