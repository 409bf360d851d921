"""Statistics, targets with their verdicts, and the outputs: a table, JSON, Markdown with PNG plots.

Everything here is pure (numbers in, numbers or text out) except the writers at the end.
"""

from __future__ import annotations

import json
import math
import os
import platform as pyplatform
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# -- statistics ------------------------------------------------------------------------------------


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default) of an ascending sequence."""
    if not sorted_values:
        raise ValueError("no values")
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    rank = q * (len(sorted_values) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = rank - low
    return float(sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction)


def percentiles(values: Iterable[float]) -> dict[str, float | int | None]:
    """count, mean, p50, p95, p99 and max (seconds in, seconds out); None when there is nothing."""
    data = sorted(v for v in values if v is not None and not math.isnan(v))
    if not data:
        return {"count": 0, "mean": None, "p50": None, "p95": None, "p99": None, "max": None}
    return {
        "count": len(data),
        "mean": sum(data) / len(data),
        "p50": quantile(data, 0.50),
        "p95": quantile(data, 0.95),
        "p99": quantile(data, 0.99),
        "max": data[-1],
    }


def _ramp_steps(ramp: Mapping[str, Any] | None) -> str:
    """How a ramped closed loop found its number of virtual customers: each level's orders/s."""
    if not ramp or not ramp.get("steps"):
        return ""
    steps = ", ".join(
        f"{step['virtual_customers']}: {step['orders_per_s']:.0f}/s"
        + (f" {step['failed']} failed" if step["failed"] else "")
        for step in ramp["steps"]
    )
    return f" (of {steps})"


def per_second(times: Iterable[float], duration: float, *, width: float = 1.0) -> list[int]:
    """How many of `times` (seconds from the phase start) fall in each `width`-second bucket of
    [0, duration + the tail after it)."""
    counts: list[int] = [0] * max(1, math.ceil(duration / width))
    for t in times:
        if t < 0:
            continue
        index = int(t // width)
        while index >= len(counts):
            counts.append(0)
        counts[index] += 1
    return counts


def downsample(values: Sequence[float], limit: int) -> list[float]:
    """At most `limit` values, evenly picked from the sorted ones (keeps the distribution's shape)."""
    data = sorted(values)
    if len(data) <= limit:
        return data
    step = (len(data) - 1) / (limit - 1)
    return [data[round(i * step)] for i in range(limit)]


def ms(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 1000:.{digits}f}"


# -- targets ---------------------------------------------------------------------------------------


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


# -- the machine -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import psutil

    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        model = pyplatform.processor()
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return {
        "cpu_model": model or "unknown",
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": pyplatform.platform(),
        "python": pyplatform.python_version(),
        "hostname": pyplatform.node(),
        "load_average_at_start": [round(x, 2) for x in load],
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def machine_line(info: Mapping[str, Any]) -> str:
    return (
        f"{info.get('cpu_model')}, {info.get('logical_cores')} logical cores, {info.get('ram_gb')} GB RAM, "
        f"{info.get('os')}, Python {info.get('python')}; load average at start "
        f"{', '.join(str(x) for x in info.get('load_average_at_start', []))}"
    )


# -- the table -------------------------------------------------------------------------------------


def phase_row(phase: Mapping[str, Any]) -> dict[str, str]:
    create = phase.get("create", {})
    latency = create.get("latency", {})
    paid = phase.get("paid", {})
    lag = (phase.get("event_lag") or {}).get("commit_to_consumer") or {}
    after = phase.get("after_recovery") or {}
    errors = create.get("errors") or {}
    load = (
        f"{phase.get('rate'):g}/s open"
        if phase.get("mode") == "open"
        else f"{phase.get('virtual_customers')} VCs{_ramp_steps(phase.get('ramp'))}"
    )
    return {
        "flow": str(phase.get("flow")),
        "scenario": str(phase.get("scenario")),
        "load": load,
        "created/s": f"{create.get('orders_per_s', 0):.0f}",
        "paid/s": f"{paid.get('orders_per_s', 0):.0f}",
        "ok %": f"{100 * create.get('success_rate', 0):.1f}",
        "p50 ms": ms(latency.get("p50")),
        "p95 ms": ms(latency.get("p95")),
        "p99 ms": ms(latency.get("p99")),
        "max ms": ms(latency.get("max"), 0),
        "->paid p99": ms((paid.get("create_to_paid") or {}).get("p99")),
        "->letter p99": ms(((phase.get("letter") or {}).get("create_to_letter") or {}).get("p99"), 0),
        "lag p99": ms(lag.get("p99")),
        "CPU ms/order": f"{(phase.get('cpu') or {}).get('platform_cpu_ms_per_order') or 0:.1f}",
        "others %": f"{(phase.get('cpu') or {}).get('other_processes_cpu_percent') or 0:.0f}",
        "errors": ", ".join(f"{k}={v}" for k, v in sorted(errors.items())) or "0",
        "unfinished": str(after.get("unfinished", "-")),
        "dup $": str(after.get("duplicate_charges", "-")),
        "dup letters": str(
            "-" if not after else after.get("duplicate_notifications", 0) + after.get("duplicate_letters", 0)
        ),
    }


TERMINAL_COLUMNS = (
    "flow",
    "scenario",
    "load",
    "created/s",
    "paid/s",
    "ok %",
    "p50 ms",
    "p99 ms",
    "->paid p99",
    "lag p99",
    "CPU ms/order",
    "others %",
    "unfinished",
    "dup $",
    "dup letters",
    "errors",
)


def render_table(phases: Sequence[Mapping[str, Any]], title: str = "sandwich bench") -> Any:
    """The phases as a rich table for the terminal (the Markdown report has every column)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    rows = [{c: phase_row(p)[c] for c in TERMINAL_COLUMNS} for p in phases]
    if not rows:
        return table
    for column in rows[0]:
        table.add_column(
            column, justify="left" if column in ("flow", "scenario", "load", "errors") else "right"
        )
    for row in rows:
        table.add_row(*row.values())
    return table


def markdown_table(rows: Sequence[Mapping[str, str]]) -> str:
    if not rows:
        return "(none)\n"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += [
        "| " + " | ".join(str(row.get(c, "")).replace("|", "/") for c in columns) + " |" for row in rows
    ]
    return "\n".join(lines) + "\n"


# -- writing ---------------------------------------------------------------------------------------


def write_json(result: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(result, indent=1, default=str))
    os.replace(temporary, path)


FLOW_COLORS = {"hybrid": "C0", "sync": "C1", "async": "C2"}


def pyplot() -> Any | None:
    """matplotlib's pyplot on its file-only backend; None when matplotlib is not installed (it comes
    with the `bench` extra: the services' image has no use for it)."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


PLOTS_NEED = "the report's plots need matplotlib: pip install 'sandwich[bench]' (./dev installs it)"


def plot_latencies(phases: Sequence[Mapping[str, Any]], path: Path, title: str) -> bool:
    """Empirical CDFs of the create latency, one line per phase given (False: nothing drawn)."""
    plt = pyplot()
    if plt is None:
        return False
    drawn = False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for phase in phases:
        label = f"{phase.get('flow')} ({phase.get('scenario')})"
        for ax, key in ((axes[0], "create_latencies_s"), (axes[1], "create_to_paid_s")):
            values = sorted(
                v * 1000 for v in phase.get("samples", {}).get(key, ()) if v is not None and v > 0
            )
            if not values:
                continue
            ys = [(i + 1) / len(values) for i in range(len(values))]
            ax.plot(values, ys, label=label, color=FLOW_COLORS.get(str(phase.get("flow"))))
            drawn = True
    for ax, what in ((axes[0], "create call latency (ms)"), (axes[1], "create -> paid (ms)")):
        ax.set_xscale("log")
        ax.set_xlabel(what)
        ax.set_ylabel("fraction of orders")
        ax.grid(True, which="both", alpha=0.3)
        for q in (0.5, 0.95, 0.99):
            ax.axhline(q, color="grey", linewidth=0.5, linestyle=":")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def plot_throughput(phases: Sequence[Mapping[str, Any]], path: Path) -> bool:
    """Orders created and orders paid per second over each scenario's phase, per flow (errors/s too
    when there were any), the fault window shaded."""
    plt = pyplot()
    if plt is None:
        return False
    scenarios = list(dict.fromkeys(str(p.get("scenario")) for p in phases))
    if not scenarios:
        return False
    fig, axes = plt.subplots(len(scenarios), 1, figsize=(10, 2.6 * len(scenarios)), squeeze=False)
    for ax, scenario in zip(axes[:, 0], scenarios, strict=True):
        window_drawn = False
        for phase in phases:
            if phase.get("scenario") != scenario:
                continue
            series = phase.get("timeseries") or {}
            ok = series.get("ok") or []
            xs = list(range(len(ok)))
            (line,) = ax.plot(
                xs, ok, label=f"{phase.get('flow')} created/s", color=FLOW_COLORS.get(str(phase.get("flow")))
            )
            # paid/s parts from created/s where orders are accepted but not paid yet (async with its
            # broker down); errors/s is drawn only when there were any.
            for name, style, shown in (("paid", ":", bool), ("errors", "--", any)):
                values = series.get(name) or []
                if shown(values):
                    ax.plot(
                        list(range(len(values))),
                        values,
                        linestyle=style,
                        color=line.get_color(),
                        label=f"{phase.get('flow')} {name}/s",
                    )
            window = (phase.get("fault") or {}).get("window")
            if window and not window_drawn:
                ax.axvspan(window[0], window[1], color="red", alpha=0.12, label="fault window")
                window_drawn = True
        ax.set_title(scenario, fontsize=10)
        ax.set_ylabel("orders/s")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    axes[-1, 0].set_xlabel("seconds into the phase")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def profile_markdown(profile: Mapping[str, Any], parts: int = 5) -> str:
    """One row per profiled service: its CPU per order, then the parts of the stack and the functions
    that took most of it (py-spy samples while the GIL was held; bench/profile.py)."""
    rows = []
    services = profile.get("services") or {}
    for name, summary in sorted(services.items(), key=lambda kv: -float(kv[1].get("cpu_ms_per_order") or 0)):
        by_part = list((summary.get("by_part") or {}).items())[:parts]
        rows.append(
            {
                "service": name,
                "CPU ms/order": f"{summary.get('cpu_ms_per_order', 0):.2f}",
                "samples": str(summary.get("samples", 0)),
                "share by part of the stack": "; ".join(
                    f"{part} {share * 100:.0f}%" for part, share in by_part
                ),
                "top functions": "; ".join(
                    f"{fn} {share * 100:.0f}%" for fn, share in (summary.get("top_functions") or [])[:3]
                ),
            }
        )
    text = (
        "py-spy samples (`--gil`, so CPU time of Python code and the C it calls; waiting is not in "
        "them) of the busiest services, each sample counted where its innermost frame belongs. A thread "
        "the kernel preempts while it holds the GIL is sampled too: on two busy cores that happens most "
        "right after a socket write wakes its receiver, so socket writes (asyncio's, uvicorn's `send`, "
        "asyncpg's `_do_execute`) look dearer here than in the CPU seconds of the processes.\n\n"
    )
    text += markdown_table(rows) if rows else "no samples\n"
    errors = profile.get("errors") or []
    if errors:
        text += "\n" + "\n".join(f"- {error}" for error in errors) + "\n"
    return text + "\n"


PERCENTILE_KEYS = ("p50", "p95", "p99", "mean")


def _metric_row(stage: str, service: str, hist: Mapping[str, Any]) -> dict[str, str]:
    """One stage's row from a histogram summary (observe.Histogram.as_dict)."""
    return {
        "stage": stage,
        "service": service,
        "events": str(hist.get("count", 0)),
        "p50 ms": ms(hist.get("p50_s")),
        "p95 ms": ms(hist.get("p95_s")),
        "p99 ms": ms(hist.get("p99_s")),
        "mean ms": ms(hist.get("mean_s")),
    }


def event_lag_markdown(lag: Mapping[str, Any]) -> str:
    """The event lag of one phase stage by stage: the producer's outbox to the broker, the broker to
    each consumer's commit, and how much of that the consumer's own work took (the rest is the way
    and the wait in its queue); last, the platform's own timestamps from paid to the notification's row."""
    rows = [
        _metric_row("commit -> published (outbox relay)", service, hist)
        for service, hist in sorted((lag.get("publish_by_service") or {}).items())
    ]
    handle = lag.get("handle_metric_by_service") or {}
    for service, hist in sorted((lag.get("consume_metric_by_service") or {}).items()):
        rows.append(_metric_row("commit -> consumer's commit", service, hist))
        if service in handle:
            rows.append(_metric_row("... of which the consumer's own work", service, handle[service]))
    timestamps = lag.get("commit_to_consumer") or {}
    if timestamps.get("count"):
        as_summary = {"count": timestamps["count"], **{f"{k}_s": timestamps.get(k) for k in PERCENTILE_KEYS}}
        rows.append(
            _metric_row(
                "paid -> order_paid notification created (platform timestamps)",
                "orders -> notifications",
                as_summary,
            )
        )
    if not rows:
        return ""
    return (
        "Percentiles of the services' histograms over the phase (estimated within their buckets, "
        "which are 5-10 ms wide between 10 and 50 ms), and of the platform's timestamps. A consumer "
        "is counted from the event's creation in its producer's transaction, so its lag includes the "
        "relay's; the consumer's own work is its inbox claim, effect and commit.\n\n" + markdown_table(rows)
    )


def _lag_phases(phases: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The healthy open-loop phases whose events went through an outbox (every flow's do), unprofiled:
    the lag target is judged on one of them."""
    return [
        p
        for p in phases
        if p.get("mode") == "open"
        and str(p.get("scenario", "")).startswith("healthy")
        and not p.get("profile")
        and (p.get("event_lag") or {}).get("publish_by_service")
    ]


def write_markdown(result: Mapping[str, Any], directory: Path) -> Path:
    """report.md (and its plots) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    phases: list[Mapping[str, Any]] = list(result.get("phases", ()))
    lines: list[str] = []
    title = "sandwich bench --compare" if result.get("compare") else "sandwich bench"
    lines.append(f"# {title}: {result.get('machine', {}).get('when', '')}\n")
    lines.append(f"Machine: {machine_line(result.get('machine', {}))}.\n")
    lines.append(
        f"Platform: {result.get('platform_note', '')}. Load generator: {result.get('generator_note', '')}. "
        f"Wall time of the run: {result.get('wall_time_s', 0):.0f} s.\n"
    )
    skipped = result.get("skipped") or {}
    for flow, reason in skipped.items():
        lines.append(f"- flow **{flow}** skipped: {reason}\n")

    verdicts = result.get("targets") or []
    if verdicts:
        lines.append("## Targets\n")
        lines.append(
            markdown_table(
                [
                    {
                        "target": v["name"],
                        "wanted": v["target"],
                        "measured": v["measured"],
                        "verdict": {True: "met", False: "**missed**", None: "not measured"}[v["met"]],
                        "by how much": v["by"],
                    }
                    for v in verdicts
                ]
            )
        )

    lines.append("## Phases\n")
    lines.append(
        "Latencies in ms. `created/s`: create calls answered 201/202 per second; `paid/s`: orders of the "
        "phase paid per second of the phase; `->paid`, `->letter`: from the scheduled send to the "
        "platform's paid time and to the letter in the mail sink; `lag`: commit of `paid` -> the "
        "notifications consumer's transaction (platform timestamps). `unfinished`, `dup $`, "
        "`dup letters`: after recovery (an order still `created` when the phase's recovery time ran out is looked at again at the end of its flow, before the platform stops). "
        "A max-throughput phase first climbs from one number of virtual customers (VCs) to the next "
        "while orders/s rise by 5% or more with none failing (each level's orders/s in brackets, counted "
        "once each of its VCs has had an order decided), then holds the best: its figures are the hold's "
        "(orders decided within it; latencies of the orders sent within it), its checks cover every "
        "order of the phase.\n"
    )
    lines.append(markdown_table([phase_row(p) for p in phases]))
    from sandwich.bench.brokers import broker_down_markdown, brokers_markdown

    for section in (broker_down_markdown(phases), brokers_markdown(result)):
        if section:
            lines.append(section)

    floors = result.get("floors") or {}
    if floors:
        lines.append("## Floors (same run)\n")
        lines.append(floors_markdown(floors, phases))

    for phase in _lag_phases(phases):
        section = event_lag_markdown(phase["event_lag"])
        if section:
            lines.append(f"## Where the event lag goes: {phase.get('flow')}, {phase.get('scenario')}\n")
            lines.append(section)

    for phase in phases:
        if phase.get("profile"):
            lines.append(f"## Where the time goes: {phase.get('flow')}, {phase.get('scenario')}\n")
            lines.append(profile_markdown(phase["profile"]))

    resource_rows = []
    for phase in phases:
        for group, usage in sorted((phase.get("resources") or {}).items()):
            resource_rows.append(
                {
                    "flow": str(phase.get("flow")),
                    "scenario": str(phase.get("scenario")),
                    "process": group,
                    "CPU s": f"{usage.get('cpu_seconds', 0):.1f}",
                    "CPU % of a core": f"{usage.get('cpu_percent', 0):.0f}",
                    "peak RSS MB": f"{usage.get('peak_rss_mb', 0):.0f}",
                }
            )
    idle = result.get("idle_memory") or {}
    if idle:
        lines.append("## Memory at idle\n")
        for flow, groups in idle.items():
            total_rss = sum(g["rss_mb"] for name, g in groups.items() if name != "bench")
            total_pss = sum(g["pss_mb"] for name, g in groups.items() if name != "bench")
            lines.append(
                f"- {flow}: RSS {total_rss:.0f} MB, PSS {total_pss:.0f} MB (all platform processes)\n"
            )
        lines.append(idle_markdown(idle))
    if resource_rows:
        lines.append("## CPU and memory per process and phase\n")
        lines.append(
            "<details><summary>table</summary>\n\n" + markdown_table(resource_rows) + "\n</details>\n"
        )

    plots = result.get("plots") or {}
    if plots:
        lines.append("## Plots\n")
        for caption, name in plots.items():
            lines.append(f"![{caption}]({name})\n")
    notes = result.get("notes") or []
    if notes:
        lines.append("## Notes\n")
        lines += [f"- {n}\n" for n in notes]
    path = directory / "report.md"
    path.write_text("\n".join(lines))
    return path


def idle_markdown(idle: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """Per process at idle, RSS / PSS in MB, one column per flow."""
    names = sorted({name for groups in idle.values() for name in groups if name != "bench"})
    rows = []
    for name in names:
        row = {"process": name}
        for flow, groups in idle.items():
            usage = groups.get(name)
            row[f"{flow} RSS / PSS MB"] = f"{usage['rss_mb']:.0f} / {usage['pss_mb']:.0f}" if usage else "-"
        rows.append(row)
    return (
        "\nRSS counts the pages processes share (PostgreSQL's shared buffers, the Python runtime) once per "
        "process; PSS splits them among the processes that share them.\n\n" + markdown_table(rows)
    )


def floors_markdown(floors: Mapping[str, Any], phases: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    db = floors.get("database") or {}
    http = floors.get("http") or {}
    hop = floors.get("platform_hop") or {}
    if db:
        rows.append(
            {"what": "database work of one order, one process", "per s": f"{db.get('orders_per_s', 0):.0f}"}
        )
    if http:
        rows.append(
            {"what": "direct call (ASGI in-process)", "per s": f"{http['direct']['requests_per_s']:.0f}"}
        )
        rows.append(
            {"what": "bare HTTP hop (uvicorn + aiohttp)", "per s": f"{http['hop']['requests_per_s']:.0f}"}
        )
    if hop:
        rows.append(
            {
                "what": "platform hop (GET /health/live of a service)",
                "per s": f"{hop.get('requests_per_s', 0):.0f}",
            }
        )
    machine = floors.get("machine") or {}
    if machine:
        trip = machine["round_trip"]
        rows.append(
            {
                "what": "one-byte round trip over loopback TCP between two processes, one at a time "
                f"(p50 {trip['p50'] * 1e6:.0f} us, p99 {trip['p99'] * 1e6:.0f} us)",
                "per s": f"{machine['round_trips_per_s']:.0f}",
            }
        )
        rows.append(
            {
                "what": f"pure-Python loop, {machine['python_loop_iterations']:,} iterations: "
                f"{machine['python_loop_s'] * 1000:.0f} ms "
                "(the interpreter's speed, to compare machines)",
                "per s": f"{1 / machine['python_loop_s']:.1f}",
            }
        )
    text = markdown_table(rows)
    ratios = floors.get("ratios") or {}
    for line in ratios.get("lines", ()):
        text += f"- {line}\n"
    return text
