"""The benchmark on more than one broker: options, the compare's legs, the side-by-side table, and
what the broker-down phase says of each flow (async refusing orders is an error kind, not a loss)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from sandwich.bench.brokers import (
    backlog_notes,
    broker_down_markdown,
    brokers_markdown,
    comparison_rows,
    engines_note,
    error_words,
    parse_brokers,
    ready_timeout,
)
from sandwich.bench.client import Answer
from sandwich.bench.compare import CompareOptions, broker_plan, legs
from sandwich.bench.context import Durations
from sandwich.bench.customers import Customer
from sandwich.bench.faults import recovery_checks, settled, while_in_place
from sandwich.bench.load import Record
from sandwich.bench.outcomes import collect_outcomes
from sandwich.platform.settings import Broker

pytestmark = pytest.mark.unit


def test_brokers_are_named_in_order_each_once() -> None:
    assert parse_brokers("nats,kafka") == [Broker.NATS, Broker.KAFKA]
    assert parse_brokers(" Kafka , nats,kafka") == [Broker.KAFKA, Broker.NATS]
    with pytest.raises(ValueError, match="unknown brokers: rabbit"):
        parse_brokers("nats,rabbit")
    with pytest.raises(ValueError):
        parse_brokers(" , ")


def test_a_platform_on_kafka_gets_longer_to_be_ready() -> None:
    assert ready_timeout(Broker.KAFKA, 60.0) == 300.0
    assert ready_timeout("kafka", 600.0) == 600.0
    assert ready_timeout(Broker.NATS, 60.0) == 60.0
    assert engines_note(["nats"]) == "embedded PostgreSQL and NATS JetStream"
    assert "hybrid's broker phases also on Apache Kafka" in engines_note(["nats", "kafka"])
    assert engines_note([]) == "embedded PostgreSQL"


def test_further_brokers_run_hybrids_broker_phases_right_after_hybrid() -> None:
    durations = Durations()
    options = CompareOptions(
        flows=("hybrid", "sync", "async"), data_dir=Path("unused"), brokers=(Broker.NATS, Broker.KAFKA)
    )
    planned = legs(options, durations)
    assert [leg.name for leg in planned] == ["hybrid", "hybrid on kafka", "sync", "async"]
    assert [leg.broker for leg in planned] == [Broker.NATS, Broker.KAFKA, Broker.NATS, Broker.NATS]
    steps = broker_plan(options, durations)
    assert [s.scenario for s in steps] == ["max throughput", "healthy at 100/s"]
    assert steps[0].ramp is not None and steps[1].rate == 100.0 and not steps[1].profile
    assert planned[1].overhead > planned[0].overhead  # the JVM starts and stops slowly
    # No hybrid in the compare: the broker leg comes last; one broker: no broker leg at all.
    only_sync = CompareOptions(flows=("sync",), data_dir=Path("unused"), brokers=(Broker.NATS, Broker.KAFKA))
    assert [leg.name for leg in legs(only_sync, durations)] == ["sync", "hybrid on kafka"]
    single = CompareOptions(flows=("hybrid", "async"), data_dir=Path("unused"), brokers=(Broker.KAFKA,))
    assert [(leg.name, leg.broker) for leg in legs(single, durations)] == [
        ("hybrid", Broker.KAFKA),
        ("async", Broker.KAFKA),
    ]


def hybrid_phase(broker: str, scenario: str, **extra: Any) -> dict[str, Any]:
    phase: dict[str, Any] = {
        "flow": "hybrid",
        "broker": broker,
        "scenario": scenario,
        "mode": "open",
        "rate": 100.0,
        "fault": None,
        "create": {"sent": 1500, "ok": 1500, "success_rate": 1.0, "errors": {}, "orders_per_s": 100.0},
        "paid": {"orders_per_s": 100.0},
        "event_lag": {"commit_to_consumer": {"p99": 0.034}, "consume_metric": {"p99_s": 0.048}},
        "after_recovery": {},
        "cpu": {"platform_cpu_ms_per_order": 15.0},
    }
    phase.update(extra)
    return phase


def latency(p99: float) -> dict[str, float]:
    return {"p50": p99 / 4, "p95": p99 / 2, "p99": p99, "max": p99 * 1.2}


def hybrid_pair(broker: str, most: float, vcs: int, p99: float, **at_target: Any) -> list[dict[str, Any]]:
    """Hybrid's max-throughput phase (`most` paid/s at `vcs` VCs) and its phase at 100/s (create p99)."""
    create = {"sent": 1500, "ok": 1500, "errors": {}, "orders_per_s": 100.0, "latency": latency(p99)}
    return [
        hybrid_phase(
            broker,
            "max throughput",
            mode="closed",
            rate=None,
            virtual_customers=vcs,
            paid={"orders_per_s": most},
            create={**create, "orders_per_s": most, "latency": latency(1.0)},
        ),
        hybrid_phase(broker, "healthy at 100/s", create=create, **at_target),
    ]


def test_the_broker_table_reads_the_figures_the_targets_quote() -> None:
    nats_phases = [
        *hybrid_pair(
            "nats",
            188.0,
            128,
            0.085,
            resources={"nats": {"cpu_seconds": 0.75, "peak_rss_mb": 40.0}, "orders": {"cpu_seconds": 4.5}},
        ),
        # profiled: py-spy is load of its own, so the table takes the unprofiled one above
        hybrid_phase(
            "nats", "healthy at 100/s, profiled", profile={"services": {}}, create={"latency": latency(9.0)}
        ),
    ]
    kafka_phases = hybrid_pair(
        "kafka",
        150.0,
        64,
        0.12,
        event_lag={"commit_to_consumer": {"p99": 0.071}, "consume_metric": {"p99_s": 0.083}},
        resources={"kafka": {"cpu_seconds": 3.0, "peak_rss_mb": 420.0}},
        cpu={"platform_cpu_ms_per_order": 19.5},
    )
    result = {
        "phases": nats_phases,
        "idle_memory": {
            "hybrid": {"nats": {"pss_mb": 30.0}, "orders": {"pss_mb": 900.0}, "bench": {"pss_mb": 99.0}}
        },
        "broker_comparison": {
            "brokers": ["nats", "kafka"],
            "phases": kafka_phases,
            "idle_memory": {"kafka": {"kafka": {"pss_mb": 380.0}, "orders": {"pss_mb": 900.0}}},
        },
    }
    nats, kafka = comparison_rows(result)
    assert nats["max_orders_per_s"] == 188.0 and nats["create_p99_s"] == 0.085
    assert (nats["lag_p99_histogram_s"], nats["lag_p99_timestamps_s"]) == (0.048, 0.034)
    assert nats["broker_cpu_ms_per_order"] == 0.5 and nats["broker_peak_rss_mb"] == 40.0
    assert nats["platform_idle_pss_mb"] == 930.0  # the load generator not counted
    assert kafka["max_orders_per_s"] == 150.0 and kafka["broker_cpu_ms_per_order"] == 2.0
    assert kafka["broker_idle_pss_mb"] == 380.0

    section = brokers_markdown(result)
    assert section.startswith("## Brokers side by side: hybrid")
    assert (
        "| NATS JetStream | 188 (128 VCs) | 85.0 ms | 48.0 ms / 34.0 ms | 15.0 ms | 0.50 ms | 30 MB / 40 MB |"
        in section
    )
    assert "| 150 (64 VCs) | 120.0 ms | 83.0 ms / 71.0 ms | 19.5 ms | 2.00 ms | 380 MB / 420 MB |" in section
    assert "profiled" not in section  # the detail rows are the phases the figures come from
    assert "still working off" not in section  # histogram and timestamps agree on both brokers
    assert brokers_markdown({"phases": nats_phases}) == ""


def record(
    seq: int, t_sent: float, answered_after: float, status: int, error: str | None, order: str | None
) -> Record:
    return Record(
        seq, 0, f"k{seq}", t_sent, t_sent, answered_after, status, error, order, "created" if order else None
    )


def test_refusals_while_the_broker_is_down_are_an_error_kind_with_their_answer_times() -> None:
    records = [
        record(0, 1.0, 0.01, 202, None, "o0"),  # before the broker stopped
        record(1, 3.0, 1.8, 503, "http_503_broker_unavailable", None),
        record(2, 4.0, 1.6, 503, "http_503_broker_unavailable", None),
        record(3, 7.9, 0.5, 503, "http_503_broker_unavailable", None),  # while it starts again
        record(4, 9.0, 0.02, 202, None, "o4"),
    ]
    seen = while_in_place(records, {"inject_began": 2.0, "inject_done": 2.1, "lift_began": 7.0})
    assert (seen["sent"], seen["taken"]) == (2, 0)
    assert seen["errors"] == {"http_503_broker_unavailable": 2}
    refused = seen["errors_in_phase"]["http_503_broker_unavailable"]
    assert refused["count"] == 3 and refused["answered_within_s"]["max"] == pytest.approx(1.8)
    assert error_words("http_503_broker_unavailable") == "503 broker_unavailable"
    assert error_words("timeout") == "timeout"


class FakeGateway:
    """The read model of one customer: `stored` orders listed (and read one by one), any other 404."""

    def __init__(self, stored: dict[str, str], at: str) -> None:
        self.stored, self.at = stored, at

    def order(self, order_id: str) -> dict[str, Any]:
        return {
            "order_id": order_id,
            "status": self.stored[order_id],
            "created_at": self.at,
            "updated_at": self.at,
        }

    async def get(self, path: str, **_: Any) -> Answer:
        if path == "/api/v1/orders":
            body: Any = {"items": [self.order(o) for o in self.stored]}
        elif path.startswith("/api/v1/orders/"):
            order_id = path.rsplit("/", 1)[1]
            if order_id not in self.stored:
                return Answer(404, {}, b'{"error": {"code": "not_found"}}')
            body = self.order(order_id)
        else:
            body = {"items": []}
        return Answer(200, {}, orjson.dumps(body))


async def test_refused_requests_are_no_lost_orders_but_an_accepted_order_never_stored_is() -> None:
    customers = [Customer(0, "c0", "t0")]
    records = [
        record(0, 0.0, 0.01, 202, None, "o0"),
        record(1, 0.1, 1.8, 503, "http_503_broker_unavailable", None),
        record(2, 0.2, 0.01, 202, None, "o2"),  # accepted: orders has not taken it (yet)
    ]
    gateway: Any = FakeGateway({"o0": "paid"}, "2026-12-06T05:00:00Z")
    since = 1796533200.0 - 5  # 2026-12-06T05:00:00Z, a little before
    outcomes = await collect_outcomes(gateway, customers, records, since, mail_dir=None)
    checks = recovery_checks(outcomes, 0.0)
    assert checks["unfinished"] == 1 and checks["unfinished_ids"] == ["o2"]
    assert checks["accepted_not_stored"] == 1 and checks["unreadable"] == 0
    assert not settled(outcomes, want_letters=False)
    gateway.stored["o2"] = "rejected"  # taken at last, and found invalid: terminal, never charged
    outcomes = await collect_outcomes(gateway, customers, records, since, mail_dir=None)
    checks = recovery_checks(outcomes, 0.0)
    assert checks["unfinished"] == 0 and checks["orders"] == 2  # the refused request is no order
    assert checks["paid_without_notification"] == 1  # o0's; o2 was rejected, nothing to tell
    assert settled(outcomes, want_letters=False)


def test_the_broker_down_section_says_what_each_flow_did() -> None:
    after = {"unfinished": 0, "duplicate_charges": 0, "duplicate_notifications": 0, "duplicate_letters": 0}
    fault = {"name": "broker_down"}
    hybrid = {
        "flow": "hybrid",
        "broker": "kafka",
        "fault": fault,
        "create": {"sent": 600, "ok": 600},
        "while_in_place": {"from_s": 3.1, "until_s": 13.0, "sent": 495, "taken": 495, "errors_in_phase": {}},
        "event_lag": {"commit_to_consumer": {"count": 600, "p99": 10.1, "max": 10.4}},
        "after_recovery": after,
    }
    refused = {"count": 480, "answered_within_s": {"p99": 1.81, "max": 1.83}}
    async_ = {
        "flow": "async",
        "broker": "kafka",
        "fault": fault,
        "create": {"sent": 600, "ok": 120},
        "while_in_place": {
            "from_s": 3.1,
            "until_s": 13.0,
            "sent": 470,
            "taken": 0,
            "errors_in_phase": {"http_503_broker_unavailable": refused},
        },
        "event_lag": {"commit_to_consumer": {"count": 0}},
        "after_recovery": after,
    }
    sync = {"flow": "sync", "broker": None, "fault": None, "create": {"sent": 500, "ok": 500}}
    text = broker_down_markdown([hybrid, sync, async_])
    lines = text.splitlines()
    (h,) = [line for line in lines if line.startswith("- **hybrid**")]
    assert "495 taken while the broker was down (495 of 495 sent in those 9.9 s)" in h
    assert "600 of 600 orders taken" in h and "paid -> notification: p99 10.10 s, max 10.40 s" in h
    (a,) = [line for line in lines if line.startswith("- **async**")]
    assert "none taken while the broker was down (0 of 470 sent in those 9.9 s)" in a
    assert "480 requests refused with 503 broker_unavailable, answered within 1.81 s p99 (max 1.83 s)" in a
    assert "unfinished 0" in a and "Apache Kafka" in a
    assert "- **sync**: not applicable: the sync flow has no broker." in lines
    assert broker_down_markdown([sync]) == ""


def test_a_backlog_carried_into_the_target_rates_phase_is_pointed_out() -> None:
    behind = {
        "broker": "kafka",
        "rate": 100.0,
        "lag_p99_histogram_s": 20.4,
        "lag_p99_timestamps_s": 1.03,
        "max_lag_p99_timestamps_s": 8.85,
    }
    caught_up = {**behind, "broker": "nats", "lag_p99_histogram_s": 0.045, "lag_p99_timestamps_s": 0.041}
    (note,) = backlog_notes([caught_up, behind])
    assert note.startswith("On Apache Kafka")
    assert "(20.4 s) is 20 times the timestamps' (1030.0 ms)" in note
    assert "paid -> notification p99 there: 8850.0 ms" in note
    assert (
        backlog_notes([{"broker": "nats", "lag_p99_histogram_s": None, "lag_p99_timestamps_s": 0.04}]) == []
    )
