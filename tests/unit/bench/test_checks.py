"""Duplicate detection after recovery and the verdicts on the targets."""

from collections import Counter
from pathlib import Path

import pytest

from sandwich.bench.compare import PHASE_OVERHEAD_S, TARGET_PHASE_LENGTH, CompareOptions, plan
from sandwich.bench.context import Durations
from sandwich.bench.faults import duplicates, extra, recovery_checks, scenarios, settled
from sandwich.bench.markdown import event_lag_markdown, floors_markdown
from sandwich.bench.outcomes import OrderView, Outcomes, letter_key
from sandwich.bench.verdicts import floor_ratios, judge, judge_zero, targets, within
from sandwich.platform.settings import Flow

pytestmark = pytest.mark.unit

A, B, C = (f"{c * 8}-aaaa-4aaa-8aaa-{c * 12}" for c in "abc")


def view(order_id: str, status: str) -> OrderView:
    return OrderView(order_id, 0, status, 1.0, 2.0)


def test_duplicates_from_counts_and_from_lists() -> None:
    assert duplicates(Counter({A: 1, B: 2, C: 3})) == {B: 2, C: 3}
    assert duplicates({(A, "order_paid"): [1.0], (B, "order_paid"): [1.0, 2.0]}) == {(B, "order_paid"): 2}
    assert extra({B: 2, C: 3}) == 3
    assert extra({}) == 0


def test_recovery_checks_count_what_must_be_zero() -> None:
    outcomes = Outcomes(
        orders={A: view(A, "paid"), B: view(B, "created"), C: view(C, "paid")},
        notifications={(A, "order_paid"): [1.0, 1.5], (C, "order_paid"): [1.0]},
        payments=Counter({A: 2, C: 1}),
        letters={(A, "order_paid"): [3.0], (C, "order_paid"): [3.0, 4.0]},
    )
    checks = recovery_checks(outcomes, 1.23)
    assert checks["unfinished"] == 1 and checks["unfinished_ids"] == [B]
    assert checks["duplicate_charges"] == 1 and checks["duplicate_charge_orders"] == [A]
    assert checks["duplicate_notifications"] == 1
    assert checks["duplicate_letters"] == 1
    assert checks["paid_without_notification"] == 0 and checks["paid_without_letter"] == 0
    assert checks["statuses"] == {"paid": 2, "created": 1}
    assert not settled(outcomes, want_letters=True)


def test_settled_waits_for_letters_of_paid_orders_only() -> None:
    outcomes = Outcomes(orders={A: view(A, "paid"), B: view(B, "payment_failed")})
    assert settled(outcomes, want_letters=False)
    assert not settled(outcomes, want_letters=True)
    outcomes.notifications[(A, "order_paid")] = [1.0]
    outcomes.letters[(A, "order_paid")] = [1.0]
    assert settled(outcomes, want_letters=True)


def test_letter_key_reads_the_kind_from_the_subject_and_the_order_from_the_body() -> None:
    letter = (
        "X-Envelope-From: sandwich@localhost\r\nSubject: Order aaaaaaaa is paid - thank you!\r\n"
        f"Message-ID: <n1@sandwich>\r\n\r\nHello,\r\nwe received your payment for order {A}.\r\n"
    ).encode()
    assert letter_key(letter) == (A, "order_paid")
    assert letter_key(letter.replace(b"is paid", b"was cancelled")) == (A, "order_cancelled")
    assert letter_key(b"Subject: hello\r\n\r\nno order here") is None


def test_fault_scenarios_fit_the_phase_and_the_flow() -> None:
    faults = {f.name: f for f in scenarios(20.0, down_for=10.0)}
    assert set(faults) == {"notifications_down", "billing_slow", "users_down", "broker_down"}
    assert faults["broker_down"].window(20.0) == (
        pytest.approx(3.333, abs=0.01),
        pytest.approx(13.333, abs=0.01),
    )
    assert faults["billing_slow"].window(20.0) == (0.0, 20.0)
    assert faults["broker_down"].applies(Flow.SYNC) is not None
    assert faults["broker_down"].applies(Flow.HYBRID) is None
    short = {f.name: f for f in scenarios(10.0, down_for=5.0)}
    start, end = short["users_down"].window(10.0)
    assert 0 < start < end <= 10.0


def test_judge_says_by_how_much_a_target_is_missed() -> None:
    met = judge("p99", 0.05, "<", 0.1, unit="ms", scale=1000)
    assert met.met is True and met.measured == "50 ms"
    missed = judge("p99", 0.15, "<", 0.1, unit="ms", scale=1000)
    assert missed.met is False and "50% over" in missed.by
    short = judge("throughput", 150, ">=", 300, unit="orders/s")
    assert short.met is False and "50% short" in short.by
    assert judge("x", None, ">=", 1).met is None
    assert judge_zero("dups", 0, "duplicates").met is True
    assert judge_zero("dups", 2, "duplicates").by == "missed: 2 duplicates"
    assert within("flat", 100, 95, 0.10).met is True
    flat = within("flat", 100, 80, 0.10)
    assert flat.met is False and "-20.0%" in flat.by
    faster = within("flat", 100, 127, 0.10)  # more data, more throughput: no slowdown to speak of
    assert faster.met is True and "+27.0%" in faster.by and "no slowdown" in faster.by


def phase(flow: str, scenario: str, **extra_fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "flow": flow,
        "scenario": scenario,
        "mode": "open",
        "rate": 100.0,
        "fault": None,
        "orders_in_db_before": 0,
        "create": {"success_rate": 1.0, "errors": {}, "orders_per_s": 100.0, "latency": {"p99": 0.05}},
        "paid": {"orders_per_s": 100.0},
        "event_lag": {"commit_to_consumer": {"p99": 0.01}, "consume_metric": None},
        "after_recovery": {
            "unfinished": 0,
            "duplicate_charges": 0,
            "duplicate_notifications": 0,
            "duplicate_letters": 0,
        },
    }
    base.update(extra_fields)
    return base


def test_targets_of_a_compare_run() -> None:
    phases = [
        phase("hybrid", "max throughput", mode="closed", paid={"orders_per_s": 250.0}),
        phase("hybrid", "healthy"),
        phase("hybrid", "notifications down", fault={"name": "notifications_down"}),
        phase("sync", "healthy"),
        phase(
            "sync",
            "notifications down",
            fault={"name": "notifications_down"},
            create={
                "success_rate": 0.5,
                "errors": {"http_503": 5},
                "orders_per_s": 50.0,
                "latency": {"p99": 1.0},
            },
        ),
    ]
    floors = {
        "database": {"orders_per_s": 1000.0},
        "http": {"hop": {"requests_per_s": 4000.0}, "direct": {"requests_per_s": 20000.0}},
        "platform_hop": {"requests_per_s": 3000.0},
    }
    idle = {
        "hybrid": {
            "orders": {"rss_mb": 1200.0, "pss_mb": 400.0},
            "bench": {"rss_mb": 900.0, "pss_mb": 900.0},
        },
        "sync": {"orders": {"rss_mb": 900.0, "pss_mb": 1100.0}},
    }
    verdicts = {v.name: v for v in targets(phases, floors, idle, compare=True, wall_time=300.0)}
    assert verdicts["hybrid sustains >= 300 orders/s create->paid with no errors"].met is False
    assert verdicts["create p99 < 100 ms at 100 orders/s (hybrid)"].met is True
    assert verdicts["one inter-service hop >= 40% of the direct call's throughput"].met is False  # 15%
    # Judged on PSS (shared pages counted once); the bench itself is not counted.
    assert verdicts["the whole platform idles under 1.0 GB resident memory, PSS (hybrid)"].met is True
    assert verdicts["the whole platform idles under 1.0 GB resident memory, PSS (sync)"].met is False
    assert verdicts["hybrid: notifications down does not lower the success rate"].met is True
    assert verdicts["sync: notifications down lowers the success rate"].met is True
    assert verdicts["under every fault: orders unfinished after recovery"].met is True
    assert verdicts["--compare completes within 10 minutes"].met is True
    ratios = floor_ratios(floors, phases)
    assert ratios["flow_to_database_floor"]["hybrid"] == 0.25
    assert ratios["platform_hop_to_bare_hop"] == 0.75


def test_letter_key_decodes_quoted_printable_bodies() -> None:
    order = "d05c75f4-01a1-49b0-8b97-d62ac8d2b61a"
    letter = (
        b"Subject: Order d05c75f4 is paid - thank you!\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Good news: we received your payment of 1.00 =E2=82=BD for order d05c75f4-01a1=\r\n"
        b"-49b0-8b97-d62ac8d2b61a.\r\n"
    )
    assert letter_key(letter) == (order, "order_paid")


def test_a_change_measured_off_target_is_shown_but_not_judged() -> None:
    shown = within("flat", 100, 60, 0.10, judged=False)
    assert shown.met is None and shown.by.startswith("-40.0%")


def test_the_compare_plan_measures_the_targets_rate_unprofiled_and_profiles_it_apart() -> None:
    durations = Durations()
    options = CompareOptions(flows=("hybrid", "sync"), data_dir=Path("unused"))
    steps = plan("hybrid", options, durations)
    at_target = [step for step in steps if step.rate == 100.0]
    assert [step.profile for step in at_target] == [False, True]
    assert at_target[0].duration == TARGET_PHASE_LENGTH * durations.open
    assert not [step for step in plan("sync", options, durations) if step.profile]


def test_the_compare_plan_finds_each_flows_max_throughput_by_a_ramp_and_budgets_the_climb() -> None:
    durations = Durations()
    options = CompareOptions(flows=("hybrid",), data_dir=Path("unused"))
    first = plan("hybrid", options, durations)[0]
    assert first.scenario == "max throughput" and first.ramp is not None
    assert tuple(first.ramp.levels) == (64, 128)
    assert first.cost == pytest.approx(
        2 * 2 * durations.ramp_step + durations.closed + PHASE_OVERHEAD_S + 1.0
    )


def test_the_floors_table_shows_the_machine_figures_that_tell_hosts_apart() -> None:
    floors = {
        "http": {"hop": {"requests_per_s": 7000.0}, "direct": {"requests_per_s": 24000.0}},
        "machine": {
            "python_loop_iterations": 5_000_000,
            "python_loop_s": 0.15,
            "round_trip": {"count": 3000, "p50": 0.000178, "p99": 0.000410},
            "round_trips_per_s": 5200.0,
        },
    }
    table = floors_markdown(floors, [])
    assert (
        "| one-byte round trip over loopback TCP between two processes, one at a time (p50 178 us, p99 410 us) | 5200 |"
        in table
    )
    assert "pure-Python loop, 5,000,000 iterations: 150 ms" in table
    assert "| bare HTTP hop (uvicorn + aiohttp) | 7000 |" in table


def test_users_down_failures_are_explained_by_the_contact_cache() -> None:
    from sandwich.bench.compare import users_down_note

    phase = {"flow": "sync", "create": {"sent": 600, "errors": {"http_503_downstream_unavailable": 494}}}
    note = users_down_note(phase)
    assert note.startswith("sync: users down failed 494 of 600 create calls")
    assert "SANDWICH_PROFILE_CACHE_TTL" in note


def test_the_event_lag_is_shown_stage_by_stage_with_the_consumers_own_work() -> None:
    def hist(count: int, p50: float, p99: float) -> dict[str, float | int]:
        return {"count": count, "mean_s": p50, "p50_s": p50, "p95_s": p99, "p99_s": p99}

    lag = {
        "publish_by_service": {"orders": hist(3000, 0.004, 0.018)},
        "consume_metric_by_service": {"kitchen": hist(1000, 0.008, 0.031), "billing": hist(5, 0.01, 0.02)},
        "handle_metric_by_service": {"kitchen": hist(1000, 0.002, 0.0125)},
        "commit_to_consumer": {"count": 990, "mean": 0.01, "p50": 0.009, "p95": 0.02, "p99": 0.0473},
    }
    rows = [
        line for line in event_lag_markdown(lag).splitlines() if line.startswith("| ") and "---" not in line
    ]
    assert rows[1:] == [
        "| commit -> published (outbox relay) | orders | 3000 | 4.0 | 18.0 | 18.0 | 4.0 |",
        "| commit -> consumer's commit | billing | 5 | 10.0 | 20.0 | 20.0 | 10.0 |",
        "| commit -> consumer's commit | kitchen | 1000 | 8.0 | 31.0 | 31.0 | 8.0 |",
        "| ... of which the consumer's own work | kitchen | 1000 | 2.0 | 12.5 | 12.5 | 2.0 |",
        "| paid -> order_paid notification created (platform timestamps) | orders -> notifications | 990 | 9.0 "
        "| 20.0 | 47.3 | 10.0 |",
    ]
    assert event_lag_markdown({"publish_by_service": {}, "commit_to_consumer": {"count": 0}}) == ""
