"""The numbers of one phase: from its records, what the platform says of its orders, and its metrics.

`summarize` makes the phase's JSON (the report's tables and plots read it); `held` cuts a ramped
phase down to its hold; `cpu_per_order` turns the resource sampler's window into CPU per order."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sandwich.bench.load import Record
from sandwich.bench.metrics import CONSUME_LAG_METRIC, HANDLE_METRIC, PUBLISH_LAG_METRIC, histogram_delta
from sandwich.bench.outcomes import Outcomes
from sandwich.bench.resources import BENCH_GROUP, OTHER_GROUP
from sandwich.bench.stats import downsample, per_second, percentiles


def platform_total(resources: Mapping[str, Mapping[str, float]], figure: str) -> float:
    """A figure summed over the platform's processes (not the load generator, not other programs)."""
    return sum(v[figure] for k, v in resources.items() if k not in (BENCH_GROUP, OTHER_GROUP))


def cpu_per_order(resources: Mapping[str, Mapping[str, float]], orders: int) -> dict[str, float | None]:
    """The platform's CPU seconds per order (every process of it: services, PostgreSQL, the broker, the
    mail sink), and the throughput that allows on this machine's cores if nothing else ran: a figure
    that other programs on the machine disturb much less than the throughput itself."""
    platform_cpu = platform_total(resources, "cpu_seconds")
    cores = os.cpu_count() or 1
    per_order = platform_cpu / orders if orders else None
    return {
        "platform_cpu_s": round(platform_cpu, 2),
        "platform_cpu_ms_per_order": round(1000 * per_order, 2) if per_order else None,
        "cpu_bound_ceiling_orders_per_s": round(cores / per_order, 1) if per_order else None,
        "bench_cpu_percent": (resources.get(BENCH_GROUP) or {}).get("cpu_percent"),
        "other_processes_cpu_percent": (resources.get(OTHER_GROUP) or {}).get("cpu_percent"),
    }


OPERATE_LATENCY = "http_request_duration_seconds{operate"


FAULT_DELAY_METRIC = "fault_delay_seconds"


SCRAPED = (PUBLISH_LAG_METRIC, CONSUME_LAG_METRIC, HANDLE_METRIC, OPERATE_LATENCY, FAULT_DELAY_METRIC)


def billing_operate(after: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any] | None:
    """How long billing took to answer POST /billing/account/operate in the phase (its own metric):
    shows whether the 200 ms fault was in effect."""
    delta = histogram_delta(
        {OPERATE_LATENCY: {"billing": after.get(OPERATE_LATENCY, {}).get("billing")}}
        if after.get(OPERATE_LATENCY, {}).get("billing")
        else {},
        before,
        OPERATE_LATENCY,
    )[0]
    return delta.as_dict() if delta is not None else None


def fault_delay(after: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any] | None:
    """The delays billing injected in the phase (its own metric, whichever route or consumer paid)."""
    delta = histogram_delta(after, before, FAULT_DELAY_METRIC)[0]
    return delta.as_dict() if delta is not None else None


def held(records: Sequence[Record], since: float) -> list[Record]:
    """The orders decided from phase second `since` on, with their times counted from there: what a
    ramped closed loop measures (its hold), the orders of the climb before it left out. An order sent
    before the hold but answered or paid within it is in (the hold's rates count it); `summarize`
    takes everything else only from the orders sent within."""
    if since <= 0:
        return list(records)
    return [
        replace(
            r,
            t_sched=r.t_sched - since,
            t_sent=r.t_sent - since,
            t_final=r.t_final - since if r.t_final is not None else None,
        )
        for r in records
        if r.decided_at >= since
    ]


def summarize(
    records: Sequence[Record],
    outcomes: Outcomes,
    wall0: float,
    duration: float,
    sampled: Mapping[str, Any],
    publish_lag: tuple[Any, Mapping[str, Any]],
    consume_lag: tuple[Any, Mapping[str, Any]],
    handle_time: tuple[Any, Mapping[str, Any]] = (None, {}),
) -> dict[str, Any]:
    """The numbers of one phase from its records and what the platform said about its orders.

    Rates count what happened within [0, `duration`] (answers, payments) whenever the order was
    sent; everything else is about the orders sent within it: a ramp's hold (`held`) begins with
    orders of the climb in flight, sent at another level."""
    every_ok = [r for r in records if r.ok]
    done_in_time = [r for r in every_ok if 0.0 <= r.t_sched + r.latency <= duration]
    sent_within = [r for r in records if r.t_sched >= 0.0]
    ok = [r for r in sent_within if r.ok]
    errors = Counter(r.error for r in sent_within if r.error)
    create_latencies = [r.latency for r in ok]

    paid = _paid(every_ok, outcomes, wall0)
    create_to_paid, paid_times = paid.create_to_paid, paid.times
    return {
        "create": {
            "sent": len(sent_within),
            "ok": len(ok),
            "success_rate": len(ok) / len(sent_within) if sent_within else 0.0,
            "orders_per_s": len(done_in_time) / duration,
            "latency": percentiles(create_latencies),
            "latency_of_failures": percentiles(r.latency for r in sent_within if not r.ok),
            "errors": dict(errors),
            "status_in_answer": dict(Counter(r.order_status for r in ok)),
            "http_status": dict(Counter(str(r.status) for r in sent_within)),
        },
        "paid": {
            "count": paid.count,
            "orders_per_s": sum(1 for t in paid_times if 0.0 <= t <= duration) / duration,
            "create_to_paid": percentiles(create_to_paid),
        },
        "letter": {
            "create_to_order_paid_notification": percentiles(paid.to_notification),
            "create_to_letter": percentiles(paid.to_letter),
        },
        "followed": {
            "count": sum(1 for r in ok if r.t_final is not None),
            "create_to_decided": percentiles(r.t_final - r.t_sched for r in ok if r.t_final is not None),
        },
        "client_visible": _client_visible(sampled),
        "event_lag": _event_lag(paid, publish_lag, consume_lag, handle_time),
        "timeseries": {
            "ok": per_second((r.t_sched + r.latency for r in ok), duration),
            "errors": per_second((r.t_sched + r.latency for r in sent_within if not r.ok), duration),
            "paid": per_second(paid_times, duration),
        },
        "samples": {
            "create_latencies_s": downsample(create_latencies, 4000),
            "create_to_paid_s": downsample(create_to_paid, 4000),
        },
    }


@dataclass
class _Paid:
    """The paid orders' times: `times` of every one paid (phase seconds), the rest of those sent
    within the phase only (seconds from their scheduled send, or from paid to the notification)."""

    times: list[float] = field(default_factory=list)
    count: int = 0
    create_to_paid: list[float] = field(default_factory=list)
    to_notification: list[float] = field(default_factory=list)
    to_letter: list[float] = field(default_factory=list)
    consumer_lag: list[float] = field(default_factory=list)


def _paid(every_ok: Sequence[Record], outcomes: Outcomes, wall0: float) -> _Paid:
    paid = _Paid()
    by_order = {r.order_id: r for r in every_ok if r.order_id}
    for order_id, record in by_order.items():
        view = outcomes.orders.get(order_id)
        if view is None or view.status != "paid" or view.updated_at is None:
            continue
        paid_at = view.updated_at
        paid.times.append(paid_at - wall0)
        if record.t_sched < 0.0:
            continue  # sent before a hold: counted as paid within it, its latencies left out
        paid.count += 1
        paid.create_to_paid.append(paid_at - record.wall_sched)
        notes = outcomes.notifications.get((order_id, "order_paid"))
        if notes:
            paid.to_notification.append(min(notes) - record.wall_sched)
            paid.consumer_lag.append(min(notes) - paid_at)
        letters = outcomes.letters.get((order_id, "order_paid"))
        if letters:
            paid.to_letter.append(min(letters) - record.wall_sched)
    return paid


def _client_visible(sampled: Mapping[str, Any]) -> dict[str, Any]:
    """What the end-to-end sampler saw, as a client following its orders would."""
    return {
        "sampled": sampled.get("sampled", 0),
        "gave_up": sampled.get("gave_up", 0),
        "not_followed_to_the_end": sampled.get("not_followed_to_the_end", 0),
        "requests": sampled.get("requests", 0),
        "create_to_seen_paid": percentiles(sampled.get("seen_paid_s", ())),
        "create_to_seen_order_paid_notification": percentiles(
            sampled.get("seen_order_paid_notification_s", ())
        ),
    }


def _event_lag(
    paid: _Paid,
    publish_lag: tuple[Any, Mapping[str, Any]],
    consume_lag: tuple[Any, Mapping[str, Any]],
    handle_time: tuple[Any, Mapping[str, Any]],
) -> dict[str, Any]:
    """Commit -> consumer from the platform's timestamps, and the services' own histograms."""
    publish_total, publish_by_service = publish_lag
    consume_total, consume_by_service = consume_lag
    return {
        "commit_to_consumer": percentiles(paid.consumer_lag),
        "commit_to_consumer_source": "order paid at (orders) -> order_paid notification created at (notifications)",
        "publish": publish_total.as_dict() if publish_total is not None else None,
        "publish_by_service": {s: h.as_dict() for s, h in publish_by_service.items()},
        "consume_metric": consume_total.as_dict() if consume_total is not None else None,
        "consume_metric_by_service": {s: h.as_dict() for s, h in consume_by_service.items()},
        "handle_metric_by_service": {s: h.as_dict() for s, h in handle_time[1].items()},
    }
