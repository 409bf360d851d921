"""The broker in the benchmark: which one the platform embeds, hybrid on each broker side by side,
and what each flow did with its broker down.

`sandwich bench --broker nats|kafka` runs on one broker (default: SANDWICH_BROKER, else nats), and
so does `--compare --broker kafka`, the whole of it. `--compare --brokers nats,kafka` runs the whole
compare on the first and, on each further broker, the hybrid phases a broker comparison needs:
the max-throughput ramp and the phase at the target rate (compare.broker_plan). The report then
has a section "Brokers side by side: hybrid" (`brokers_markdown`): the figures the targets quote,
read by the same functions (bench/figures.py), and the broker process's own CPU and memory.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sandwich.bench import faults as faults_mod
from sandwich.bench.figures import at_target_rate, cpu_ms_per_order, event_lag_p99, find
from sandwich.platform.settings import Broker, Flow

KAFKA_READY_TIMEOUT_S = 300.0
"""How long a platform on Kafka may take to be ready: the JVM starts slowly, every consumer group
joins, and the first start on a machine may also fetch Kafka's jars with Maven."""
KAFKA_START_STOP_S = 30.0
"""What a platform on Kafka takes beyond one on NATS to start and stop (the run's time budget)."""


def default_broker() -> str:
    """SANDWICH_BROKER, else nats (as `sandwich up`)."""
    return os.environ.get("SANDWICH_BROKER") or Broker.NATS.value


def parse_brokers(text: str) -> list[Broker]:
    """`nats,kafka` -> the brokers in that order, each once; ValueError for an unknown name."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in {b.value for b in Broker}]
    if unknown:
        raise ValueError(
            f"unknown brokers: {', '.join(unknown)} (known: {', '.join(b.value for b in Broker)})"
        )
    if not names:
        raise ValueError("no broker named")
    return [Broker(name) for name in dict.fromkeys(names)]


def ready_timeout(broker: Broker | str, wanted: float) -> float:
    """The platform's ready timeout on `broker`: at least KAFKA_READY_TIMEOUT_S on Kafka."""
    return max(wanted, KAFKA_READY_TIMEOUT_S) if Broker(broker) is Broker.KAFKA else wanted


def start_stop_overhead(broker: Broker | str) -> float:
    return KAFKA_START_STOP_S if Broker(broker) is Broker.KAFKA else 0.0


def broker_name(kind: str | None) -> str:
    """`kafka` -> `Apache Kafka 4.4.0 (KRaft)`; `nats` -> `NATS JetStream`."""
    if kind == Broker.KAFKA.value:
        version = ""
        with contextlib.suppress(Exception):
            from sandwich.platform.embedded.apache_kafka import kafka_version

            version = f" {kafka_version()}"
        return f"Apache Kafka{version} (KRaft)"
    if kind == Broker.NATS.value:
        return "NATS JetStream"
    return str(kind)


def engines_note(brokers: Sequence[str]) -> str:
    """`embedded PostgreSQL and NATS JetStream` (the first broker), plus where hybrid also ran."""
    if not brokers:
        return "embedded PostgreSQL"
    first, *others = brokers
    text = f"embedded PostgreSQL and {broker_name(first)}"
    if others:
        text += f" (hybrid's broker phases also on {', '.join(broker_name(b) for b in others)})"
    return text


# -- hybrid on each broker -------------------------------------------------------------------------


def platform_pss_mb(groups: Mapping[str, Mapping[str, float]]) -> float:
    """The whole platform's PSS at idle (the load generator not counted)."""
    return sum(g["pss_mb"] for name, g in groups.items() if name != "bench")


def broker_figures(
    broker: str, phases: Sequence[Mapping[str, Any]], idle: Mapping[str, Mapping[str, float]] | None
) -> dict[str, Any]:
    """Hybrid's figures on one broker: the most orders/s paid (its max-throughput phase), and at the
    target rate create p99, event lag p99 (histogram and timestamps), the platform's CPU per order,
    the broker process's CPU per order and peak RSS; the broker's and the platform's PSS at idle."""
    best = find(phases, "hybrid", "max throughput")
    at = at_target_rate(phases)
    row: dict[str, Any] = {"broker": broker}
    if best is not None:
        row["max_orders_per_s"] = best["paid"]["orders_per_s"]
        row["max_virtual_customers"] = best.get("virtual_customers")
        row["max_errors"] = sum((best["create"].get("errors") or {}).values())
        row["max_lag_p99_timestamps_s"] = event_lag_p99(best)[1]
    if at is not None:
        by_histogram, by_timestamps = event_lag_p99(at)
        resources = at.get("resources") or {}
        row.update(
            {
                "rate": at.get("rate"),
                "create_p99_s": at["create"]["latency"]["p99"],
                "lag_p99_histogram_s": by_histogram,
                "lag_p99_timestamps_s": by_timestamps,
                "platform_cpu_ms_per_order": (at.get("cpu") or {}).get("platform_cpu_ms_per_order"),
                "broker_cpu_ms_per_order": cpu_ms_per_order(resources, at["create"]["ok"]).get(broker),
                "broker_peak_rss_mb": (resources.get(broker) or {}).get("peak_rss_mb"),
            }
        )
    if idle:
        row["broker_idle_pss_mb"] = (idle.get(broker) or {}).get("pss_mb")
        row["platform_idle_pss_mb"] = round(platform_pss_mb(idle), 1)
    return row


def comparison_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row of figures per broker compared: the first from the compare's own hybrid phases, each
    further one from the phases run on it (result["broker_comparison"])."""
    comparison = result.get("broker_comparison") or {}
    brokers = comparison.get("brokers") or []
    rows = []
    for index, broker in enumerate(brokers):
        if index == 0:
            phases, idle = result.get("phases") or [], (result.get("idle_memory") or {}).get("hybrid")
        else:
            phases = [p for p in comparison.get("phases") or () if p.get("broker") == broker]
            idle = (comparison.get("idle_memory") or {}).get(broker)
        if phases:
            rows.append(broker_figures(broker, phases, idle))
    return rows


def _ms(value: float | None) -> str:
    """Seconds in ms, or in s from 10 s on."""
    if value is None:
        return "-"
    return f"{value:.1f} s" if value >= 10 else f"{value * 1000:.1f} ms"


def _number(value: float | None, unit: str, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f} {unit}"


def comparison_table_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The figures as the report's table shows them."""
    out = []
    for row in rows:
        rate = row.get("rate")
        at = f" at {rate:g}/s" if rate else ""
        out.append(
            {
                "broker": broker_name(row["broker"]),
                "max orders/s": _number(row.get("max_orders_per_s"), "").strip()
                + (f" ({row['max_virtual_customers']} VCs)" if row.get("max_virtual_customers") else ""),
                f"create p99{at}": _ms(row.get("create_p99_s")),
                f"event lag p99{at}: histogram / timestamps": (
                    f"{_ms(row.get('lag_p99_histogram_s'))} / {_ms(row.get('lag_p99_timestamps_s'))}"
                ),
                f"platform CPU per order{at}": _number(row.get("platform_cpu_ms_per_order"), "ms", 1),
                f"broker CPU per order{at}": _number(row.get("broker_cpu_ms_per_order"), "ms", 2),
                "broker memory: idle PSS / peak RSS": (
                    f"{_number(row.get('broker_idle_pss_mb'), 'MB')} / {_number(row.get('broker_peak_rss_mb'), 'MB')}"
                ),
                "platform idle PSS": _number(
                    row["platform_idle_pss_mb"] / 1024 if row.get("platform_idle_pss_mb") else None, "GB", 2
                ),
            }
        )
    return out


def brokers_markdown(result: Mapping[str, Any]) -> str:
    """The section "Brokers side by side: hybrid" (empty when the run compared no brokers)."""
    from sandwich.bench.report import markdown_table, phase_row

    comparison = result.get("broker_comparison") or {}
    brokers = comparison.get("brokers") or []
    if len(brokers) < 2:
        return ""
    rows = comparison_rows(result)
    first, *others = (broker_name(b) for b in brokers)
    text = [
        "## Brokers side by side: hybrid\n",
        f"The compare above ran on {first}. On {', '.join(others)}, a platform of its own ran hybrid's "
        "max-throughput ramp and its phase at the target rate, as above, right after hybrid's phases "
        "on the first broker. Event lag p99 by the consumers' histogram (all consumers, estimated "
        "within its buckets) / by the platform's timestamps (paid -> notification created). The "
        "broker's CPU and memory are its own process's (Kafka: one JVM); the platform's CPU counts "
        "every process of it, the broker's included.\n",
        markdown_table(comparison_table_rows(rows)),
    ]
    text += [f"- {note}\n" for note in backlog_notes(rows)]
    detail = [
        {"broker": str(p.get("broker")), **phase_row(p)}
        for phases in (result.get("phases") or (), comparison.get("phases") or ())
        for p in phases
        if p.get("flow") == "hybrid"
        and (p.get("scenario") == "max throughput" or p is at_target_rate(phases))
    ]
    if detail:
        text.append("The phases these figures come from:\n\n" + markdown_table(detail))
    for name, reason in (comparison.get("skipped") or {}).items():
        text.append(f"- {name} not measured: {reason}\n")
    return "\n".join(text) + "\n"


BACKLOG_RATIO = 3.0
"""A histogram p99 this many times the timestamps' says the consumers were still behind."""


def backlog_notes(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Where a broker's consumers carried a backlog into the phase at the target rate: the phase's
    histogram then counts the lag of events left over from the max-throughput phase before it, while
    the timestamps count only the phase's own orders."""
    notes = []
    for row in rows:
        histogram, timestamps = row.get("lag_p99_histogram_s"), row.get("lag_p99_timestamps_s")
        if histogram is None or not timestamps or histogram < BACKLOG_RATIO * timestamps:
            continue
        before = row.get("max_lag_p99_timestamps_s")
        notes.append(
            f"On {broker_name(row['broker'])} the consumers' histogram at {row.get('rate') or 0:g}/s "
            f"({_ms(histogram)}) is {histogram / timestamps:.0f} times the timestamps' ({_ms(timestamps)}): "
            "its consumers were still working off events of the max-throughput phase before it"
            + (f" (paid -> notification p99 there: {_ms(before)})" if before is not None else "")
            + ", and the histogram counts those too; the timestamps count only the phase's own orders."
        )
    return notes


# -- the broker down, flow by flow -----------------------------------------------------------------

_HTTP_ERROR = re.compile(r"^http_(\d{3})_(.+)$")


def error_words(kind: str) -> str:
    """`http_503_broker_unavailable` -> `503 broker_unavailable`; other kinds as they are."""
    match = _HTTP_ERROR.match(kind)
    return f"{match[1]} {match[2]}" if match else kind


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def broker_down_line(phase: Mapping[str, Any]) -> str:
    """What one flow's broker-down phase did: orders taken (while the broker was down, and in all),
    requests refused by kind with how fast they were answered, and what came of the orders taken."""
    create, after = phase["create"], phase.get("after_recovery") or {}
    window = phase.get("while_in_place") or {}
    down_for = (
        window["until_s"] - window["from_s"]
        if window.get("from_s") is not None and window.get("until_s") is not None
        else None
    )
    parts = []
    sent_down, taken_down = window.get("sent", 0), window.get("taken", 0)
    if sent_down:
        parts.append(
            "none taken while the broker was down"
            if taken_down == 0
            else f"{taken_down} taken while the broker was down"
        )
        parts[-1] += f" ({taken_down} of {sent_down} sent in those {down_for:.1f} s)"
    parts.append(f"{create['ok']} of {create['sent']} orders taken in the phase")
    for kind, failed in sorted((window.get("errors_in_phase") or {}).items()):
        answered = failed.get("answered_within_s") or {}
        how = f"refused with {error_words(kind)}" if _HTTP_ERROR.match(kind) else f"failed: {kind}"
        parts.append(
            f"{failed['count']} requests {how}, answered within {_seconds(answered.get('p99'))} p99 "
            f"(max {_seconds(answered.get('max'))}) of being sent"
        )
    lag = (phase.get("event_lag") or {}).get("commit_to_consumer") or {}
    if lag.get("count"):
        parts.append(
            f"the orders' events, paid -> notification: p99 {_seconds(lag.get('p99'))}, "
            f"max {_seconds(lag.get('max'))}"
        )
    parts.append(
        f"after recovery: unfinished {after.get('unfinished', '-')}, duplicate charges "
        f"{after.get('duplicate_charges', '-')}, duplicate letters "
        f"{(after.get('duplicate_notifications') or 0) + (after.get('duplicate_letters') or 0)}"
    )
    return "; ".join(parts)


def broker_down_markdown(phases: Sequence[Mapping[str, Any]]) -> str:
    """The section on the broker-down phase: one line per flow of the run."""
    flows = list(dict.fromkeys(str(p.get("flow")) for p in phases))
    broker_down = next(f for f in faults_mod.scenarios(12.0) if f.name == "broker_down")
    lines = []
    for flow in flows:
        phase = next(
            (
                p
                for p in phases
                if p.get("flow") == flow and (p.get("fault") or {}).get("name") == "broker_down"
            ),
            None,
        )
        if phase is not None:
            lines.append(f"- **{flow}** ({broker_name(phase.get('broker'))}): {broker_down_line(phase)}.")
            continue
        with contextlib.suppress(ValueError):
            why_not = broker_down.applies(Flow(flow))
            if why_not:
                lines.append(f"- **{flow}**: not applicable: {why_not}.")
    if not any(line.startswith("- **") and "applicable" not in line for line in lines):
        return ""
    return (
        "## The broker down, flow by flow\n\n"
        "The broker stopped for the fault's window and started again. A request the platform refused "
        "took no order: it is counted among the phase's errors, not as an unfinished order.\n\n"
        + "\n".join(lines)
        + "\n"
    )
