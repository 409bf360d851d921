"""The outputs: the machine described, the table of phases (terminal and Markdown), JSON.

The rest of the report has modules of its own: statistics (`stats.py`), the targets' verdicts
(`verdicts.py`), report.md (`markdown.py`) and its PNG plots (`plots.py`). Everything here is pure
(numbers in, numbers or text out) except the writer at the end.
"""

from __future__ import annotations

import json
import os
import platform as pyplatform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sandwich.bench.stats import ms

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
