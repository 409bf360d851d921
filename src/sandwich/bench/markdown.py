"""The written report, report.md: the tables, the targets, the floors, event lag, profiles, notes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sandwich.bench.report import machine_line, markdown_table, phase_row
from sandwich.bench.stats import ms


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


PHASES_LEGEND = (
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


def write_markdown(result: Mapping[str, Any], directory: Path) -> Path:
    """report.md (and its plots) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    phases: list[Mapping[str, Any]] = list(result.get("phases", ()))
    lines = _heading(result) + _targets_section(result.get("targets") or [])
    lines.append("## Phases\n")
    lines.append(PHASES_LEGEND)
    lines.append(markdown_table([phase_row(p) for p in phases]))
    lines += _where_it_goes(result, phases)
    lines += _memory_and_processes(result.get("idle_memory") or {}, phases)
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


def _heading(result: Mapping[str, Any]) -> list[str]:
    title = "sandwich bench --compare" if result.get("compare") else "sandwich bench"
    lines = [
        f"# {title}: {result.get('machine', {}).get('when', '')}\n",
        f"Machine: {machine_line(result.get('machine', {}))}.\n",
        f"Platform: {result.get('platform_note', '')}. Load generator: {result.get('generator_note', '')}. "
        f"Wall time of the run: {result.get('wall_time_s', 0):.0f} s.\n",
    ]
    skipped = result.get("skipped") or {}
    for flow, reason in skipped.items():
        lines.append(f"- flow **{flow}** skipped: {reason}\n")
    return lines


def _targets_section(verdicts: Sequence[Mapping[str, Any]]) -> list[str]:
    if not verdicts:
        return []
    rows = [
        {
            "target": v["name"],
            "wanted": v["target"],
            "measured": v["measured"],
            "verdict": {True: "met", False: "**missed**", None: "not measured"}[v["met"]],
            "by how much": v["by"],
        }
        for v in verdicts
    ]
    return ["## Targets\n", markdown_table(rows)]


def _where_it_goes(result: Mapping[str, Any], phases: Sequence[Mapping[str, Any]]) -> list[str]:
    """The brokers' sections, the floors, where the event lag and the time go."""
    from sandwich.bench.brokers import broker_down_markdown, brokers_markdown

    lines = [section for section in (broker_down_markdown(phases), brokers_markdown(result)) if section]
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
    return lines


def _memory_and_processes(
    idle: Mapping[str, Mapping[str, Mapping[str, float]]], phases: Sequence[Mapping[str, Any]]
) -> list[str]:
    lines: list[str] = []
    if idle:
        lines.append("## Memory at idle\n")
        for flow, groups in idle.items():
            total_rss = sum(g["rss_mb"] for name, g in groups.items() if name != "bench")
            total_pss = sum(g["pss_mb"] for name, g in groups.items() if name != "bench")
            lines.append(
                f"- {flow}: RSS {total_rss:.0f} MB, PSS {total_pss:.0f} MB (all platform processes)\n"
            )
        lines.append(idle_markdown(idle))
    resource_rows = [
        {
            "flow": str(phase.get("flow")),
            "scenario": str(phase.get("scenario")),
            "process": group,
            "CPU s": f"{usage.get('cpu_seconds', 0):.1f}",
            "CPU % of a core": f"{usage.get('cpu_percent', 0):.0f}",
            "peak RSS MB": f"{usage.get('peak_rss_mb', 0):.0f}",
        }
        for phase in phases
        for group, usage in sorted((phase.get("resources") or {}).items())
    ]
    if resource_rows:
        lines.append("## CPU and memory per process and phase\n")
        lines.append(
            "<details><summary>table</summary>\n\n" + markdown_table(resource_rows) + "\n</details>\n"
        )
    return lines


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
