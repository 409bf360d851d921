"""The figures the targets, the broker comparison and the report's texts quote, picked from phases.

Pure: the phases are the JSON-ready dicts `runner.run_phase` returns. One place decides which phase
a figure comes from (the max-throughput phase, the unprofiled phase at the target rate) and how it
is read (the event lag by the consumers' histogram, else by the platform's timestamps), so the
targets and the tables that quote the same figure cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

TARGET_RATE = 100.0
"""The issue's latency targets are quoted at this rate (hybrid)."""


def find(phases: Sequence[Mapping[str, Any]], flow: str, scenario: str) -> Mapping[str, Any] | None:
    """The first phase of `flow` with this scenario."""
    return next((p for p in phases if p.get("flow") == flow and p.get("scenario") == scenario), None)


def at_target_rate(
    phases: Sequence[Mapping[str, Any]], flow: str = "hybrid", rate: float = TARGET_RATE
) -> Mapping[str, Any] | None:
    """The healthy open-loop phase at `rate` the latency targets are judged on: an unprofiled one
    first (py-spy's sampling is load of its own), else a profiled one, else the flow's `healthy`."""
    candidates = [
        p
        for p in phases
        if p.get("flow") == flow and p.get("mode") == "open" and p.get("rate") == rate and not p.get("fault")
    ]
    return (
        next((p for p in candidates if not p.get("profile")), None)
        or next(iter(candidates), None)
        or find(phases, flow, "healthy")
    )


def event_lag_p99(phase: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """The event lag p99 of a phase, seconds: by the consumers' histogram (every consumer, estimated
    within its buckets; None when no service exposed it) and by the platform's timestamps (paid ->
    the order_paid notification created)."""
    lag = phase.get("event_lag") or {}
    consume = lag.get("consume_metric")
    histogram = consume.get("p99_s") if consume else None
    return histogram, (lag.get("commit_to_consumer") or {}).get("p99")


def cpu_ms_per_order(resources: Mapping[str, Mapping[str, float]], orders: int) -> dict[str, float]:
    """Each process group's CPU milliseconds per order of the phase (per one, when there were none)."""
    count = max(1, orders)
    return {name: round(1000 * usage["cpu_seconds"] / count, 2) for name, usage in resources.items()}
