"""Percentiles, per-second buckets and histograms of `sandwich bench`."""

import math

import pytest

from sandwich.bench.metrics import Histogram, parse_histograms
from sandwich.bench.stats import downsample, per_second, percentiles, quantile

pytestmark = pytest.mark.unit


def test_quantile_interpolates_between_ranks_like_numpy() -> None:
    data = [1.0, 2.0, 3.0, 4.0]
    assert quantile(data, 0.0) == 1.0
    assert quantile(data, 1.0) == 4.0
    assert quantile(data, 0.5) == 2.5
    assert quantile(data, 0.25) == pytest.approx(1.75)
    assert quantile([7.0], 0.99) == 7.0


def test_percentiles_of_one_to_a_hundred() -> None:
    stats = percentiles(float(i) for i in range(1, 101))
    assert stats["count"] == 100
    assert stats["p50"] == pytest.approx(50.5)
    assert stats["p95"] == pytest.approx(95.05)
    assert stats["p99"] == pytest.approx(99.01)
    assert stats["max"] == 100.0
    assert stats["mean"] == pytest.approx(50.5)


def test_percentiles_ignore_order_and_missing_values() -> None:
    assert percentiles([3.0, 1.0, 2.0, math.nan])["p50"] == 2.0
    empty = percentiles([])
    assert empty["count"] == 0 and empty["p99"] is None


def test_per_second_buckets_and_the_tail_after_the_phase() -> None:
    assert per_second([0.1, 0.9, 1.0, 2.5, -1.0], 3.0) == [2, 1, 1]
    assert per_second([4.2], 2.0) == [0, 0, 0, 0, 1]


def test_downsample_keeps_the_extremes_and_the_shape() -> None:
    values = [float(i) for i in range(1000)]
    small = downsample(values, 11)
    assert small[0] == 0.0 and small[-1] == 999.0 and len(small) == 11
    assert small[5] == pytest.approx(499.5, abs=1)
    assert downsample([3.0, 1.0], 10) == [1.0, 3.0]


EXPOSITION = """# HELP outbox_publish_lag_seconds Time from commit to publish
# TYPE outbox_publish_lag_seconds histogram
outbox_publish_lag_seconds_bucket{le="0.001",service="orders"} 10.0
outbox_publish_lag_seconds_bucket{le="0.005",service="orders"} 60.0
outbox_publish_lag_seconds_bucket{le="0.01",service="orders"} 90.0
outbox_publish_lag_seconds_bucket{le="0.02",service="orders"} 100.0
outbox_publish_lag_seconds_bucket{le="+Inf",service="orders"} 100.0
outbox_publish_lag_seconds_count{service="orders"} 100.0
outbox_publish_lag_seconds_sum{service="orders"} 0.5
outbox_publish_lag_seconds_created{service="orders"} 1.7e9
http_requests_total{service="orders"} 5.0
"""


def test_parse_a_prometheus_histogram_and_estimate_quantiles() -> None:
    hist = parse_histograms(EXPOSITION, "outbox_publish_lag_seconds")
    assert hist is not None
    assert hist.count == 100 and hist.total == pytest.approx(0.5)
    assert hist.buckets[math.inf] == 100
    # 50th of 100 falls in (0.001, 0.005]: 40 of that bucket's 50
    assert hist.quantile(0.5) == pytest.approx(0.001 + 0.004 * 40 / 50)
    assert hist.quantile(0.99) == pytest.approx(0.01 + 0.01 * 9 / 10)
    assert parse_histograms(EXPOSITION, "event_consume_lag_seconds") is None


def test_histogram_difference_between_two_scrapes() -> None:
    before = Histogram({0.01: 5.0, math.inf: 6.0}, 6.0, 0.1)
    after = Histogram({0.01: 15.0, math.inf: 16.0}, 16.0, 0.2)
    delta = after.minus(before)
    assert delta.count == 10 and delta.buckets == {0.01: 10.0, math.inf: 10.0}
    assert delta.quantile(0.5) == pytest.approx(0.005)
    # everything beyond the largest finite bound: that bound is the best estimate
    assert Histogram({0.01: 0.0, math.inf: 4.0}, 4.0, 1.0).quantile(0.5) == 0.01
    assert Histogram().quantile(0.5) is None
