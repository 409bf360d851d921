"""The system overview's figures, read from a service's Prometheus text."""

from __future__ import annotations

import pytest

from sandwich.services.gateway.system import percentile_ms, read_figures

pytestmark = pytest.mark.unit

METRICS = """\
# TYPE http_requests_total counter
http_requests_total{service="orders",method="POST",route="/api/v1/order",status="201"} 95.0
http_requests_total{service="orders",method="POST",route="/api/v1/order",status="503"} 5.0
# TYPE event_consume_lag_seconds histogram
event_consume_lag_seconds_bucket{service="kitchen",consumer="kitchen",le="0.01"} 50.0
event_consume_lag_seconds_bucket{service="kitchen",consumer="kitchen",le="0.02"} 90.0
event_consume_lag_seconds_bucket{service="kitchen",consumer="kitchen",le="0.05"} 100.0
event_consume_lag_seconds_bucket{service="kitchen",consumer="kitchen",le="+Inf"} 100.0
event_consume_lag_seconds_count{service="kitchen",consumer="kitchen"} 100.0
event_consume_lag_seconds_sum{service="kitchen",consumer="kitchen"} 1.2
# TYPE outbox_backlog gauge
outbox_backlog{service="orders"} 3.0
# TYPE orders_by_status gauge
orders_by_status{status="paid"} 7.0
orders_by_status{status="completed"} 2.0
"""


def test_requests_errors_backlog_and_orders_are_read_from_the_metrics() -> None:
    figures = read_figures(METRICS)
    assert figures.requests == 100
    assert figures.error_rate == pytest.approx(0.05)
    assert figures.outbox_backlog == 3
    assert figures.orders_by_status == {"paid": 7, "completed": 2}


def test_the_lag_percentile_is_interpolated_within_its_bucket() -> None:
    # 99 of 100 lies in the 20-50 ms bucket, 9/10 of the way through it.
    assert read_figures(METRICS).lag_p99_ms == pytest.approx(47.0)
    assert percentile_ms({0.01: 0.0, float("inf"): 0.0}, 0.99) is None
    assert percentile_ms({}, 0.99) is None
    assert percentile_ms({0.01: 1.0, float("inf"): 100.0}, 0.5) == 10.0, (
        "beyond the last bound: its lower edge"
    )


def test_a_service_with_no_requests_has_no_error_rate() -> None:
    assert read_figures("").error_rate is None
