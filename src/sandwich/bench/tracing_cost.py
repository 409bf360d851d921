"""`sandwich bench --tracing`: what tracing costs, off and with every order sampled, in one run.

The same flow is started twice, one platform after the other, and given the same open-loop load
(`--rate`, default 50 orders/s, for `--duration`): first with tracing off (the default: ids made and
passed on, nothing recorded), then with every trace sampled and exported over OTLP/HTTP to a sink
that this process runs and that takes the batches and drops them (so the figure is the platform's
cost, not a trace backend's). Each pair is repeated `--repeat` times, alternating, so that drift on
a shared machine falls on both sides. The figure that matters is the platform's CPU per order
(every process: services, PostgreSQL, the broker, the mail sink), side by side.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sandwich.bench.context import Durations, customers_needed, prepare
from sandwich.bench.phase import run_phase
from sandwich.bench.resources import BENCH_GROUP, OTHER_GROUP
from sandwich.bench.target import start_platform, stop_platform
from sandwich.platform.settings import Broker

TRACING_OFF: dict[str, str] = {"OTEL_TRACES_EXPORTER": "none"}
BUDGET_PERCENT = 15.0
"""The most that tracing every order may add to the platform's CPU per order (issue 18)."""


class DiscardingSink:
    """An OTLP/HTTP endpoint that answers every export with success and keeps nothing."""

    def __init__(self) -> None:
        self.batches = 0
        self.bytes = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a collector would allow

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                sink.batches += 1
                sink.bytes += length
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")  # an empty ExportTraceServiceResponse
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-sink", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass(frozen=True)
class TracingOptions:
    flow: str
    broker: Broker
    data_dir: Path
    rate: float
    duration: float
    repeat: int
    keep_data: bool = False


def tracing_on(sink: DiscardingSink) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",  # every order, every span
    }


async def _measure(
    options: TracingOptions, env: dict[str, str], label: str, console: Console
) -> dict[str, Any]:
    base = options.data_dir / "bench"
    base.mkdir(parents=True, exist_ok=True)
    target = await asyncio.to_thread(
        partial(start_platform, options.flow, base, console, broker=options.broker, extra_env=env)
    )
    ctx = None
    try:
        needed = customers_needed(options.rate * options.duration, 16)
        ctx = await prepare(target, console, Durations(), needed, max(64, int(options.rate * 2)))
        phase = await run_phase(
            ctx,
            scenario=label,
            mode="open",
            duration=options.duration,
            rate=options.rate,
            settle_timeout=30.0,
        )
        return phase
    finally:
        if ctx is not None:
            ctx.sampler.stop()
            await ctx.client.aclose()
        await asyncio.to_thread(stop_platform, target, keep=options.keep_data)


async def run_tracing_bench(options: TracingOptions, console: Console) -> dict[str, Any]:
    sink = DiscardingSink()
    phases: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    try:
        for round_no in range(1, options.repeat + 1):
            for variant, env in (("off", TRACING_OFF), ("on", tracing_on(sink))):
                label = f"tracing {variant} ({round_no}/{options.repeat})"
                console.log(
                    f"[bold]{label}[/]: {options.flow}, {options.rate:g} orders/s for {options.duration:g}s"
                )
                phases[variant].append(await _measure(options, env, label, console))
    finally:
        sink.stop()
    return {
        "flow": options.flow,
        "broker": options.broker.value,
        "rate": options.rate,
        "duration_s": options.duration,
        "phases": phases,
        "summary": summarize(phases),
        "sink": {"batches": sink.batches, "bytes": sink.bytes},
        "budget_percent": BUDGET_PERCENT,
    }


def _cpu(phase: dict[str, Any]) -> float | None:
    value = (phase.get("cpu") or {}).get("platform_cpu_ms_per_order")
    return float(value) if value is not None else None


def _by_process(phases: list[dict[str, Any]]) -> dict[str, float]:
    """CPU ms per order of each process group, the mean over the phases."""
    totals: dict[str, list[float]] = {}
    for phase in phases:
        orders = (phase.get("create") or {}).get("ok") or 0
        for group, figures in (phase.get("resources") or {}).items():
            if orders and "cpu_seconds" in figures and group not in (BENCH_GROUP, OTHER_GROUP):
                totals.setdefault(group, []).append(1000 * figures["cpu_seconds"] / orders)
    return {group: round(statistics.fmean(values), 3) for group, values in totals.items()}


def summarize(phases: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    off = [c for c in (_cpu(p) for p in phases["off"]) if c is not None]
    on = [c for c in (_cpu(p) for p in phases["on"]) if c is not None]
    if not off or not on:
        return {"off_ms_per_order": None, "on_ms_per_order": None, "increase_percent": None}
    mean_off, mean_on = statistics.fmean(off), statistics.fmean(on)
    return {
        "off_ms_per_order": round(mean_off, 2),
        "on_ms_per_order": round(mean_on, 2),
        "increase_percent": round(100 * (mean_on / mean_off - 1), 1),
        "within_budget": mean_on <= mean_off * (1 + BUDGET_PERCENT / 100),
        "off_by_process": _by_process(phases["off"]),
        "on_by_process": _by_process(phases["on"]),
    }


def render_tracing_table(result: dict[str, Any]) -> Table:
    summary = result["summary"]
    table = Table(
        title=f"tracing off and on: {result['flow']}, {result['rate']:g} orders/s", title_justify="left"
    )
    table.add_column("process")
    table.add_column("off, CPU ms/order", justify="right")
    table.add_column("on (every order), CPU ms/order", justify="right")
    table.add_column("change", justify="right")
    off, on = summary.get("off_by_process") or {}, summary.get("on_by_process") or {}
    for group in sorted(set(off) | set(on), key=lambda g: -(on.get(g) or 0)):
        before, after = off.get(group), on.get(group)
        change = f"{after - before:+.2f}" if before is not None and after is not None else "-"
        table.add_row(
            group,
            f"{before:.2f}" if before is not None else "-",
            f"{after:.2f}" if after is not None else "-",
            change,
        )
    if summary.get("off_ms_per_order") is not None:
        table.add_row(
            "[bold]platform[/]",
            f"[bold]{summary['off_ms_per_order']:.2f}[/]",
            f"[bold]{summary['on_ms_per_order']:.2f}[/]",
            f"[bold]{summary['increase_percent']:+.1f} %[/]",
        )
    return table
