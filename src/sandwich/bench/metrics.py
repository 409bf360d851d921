"""Prometheus histograms read from every service's /metrics, before and after a phase.

`outbox_publish_lag_seconds`, `event_consume_lag_seconds` and `event_handle_seconds` (and the
fault's own delay); a phase's figure is the difference of the two reads (`histogram_delta`)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sandwich.bench.client import Http, HttpError

PUBLISH_LAG_METRIC = "outbox_publish_lag_seconds"


CONSUME_LAG_METRIC = "event_consume_lag_seconds"
"""Proposed: observed by platform/inbox.py's `idempotent_consumer` after a handled event's
transaction commits, as `time.time() - envelope.occurred_at`, labelled by service and consumer."""


HANDLE_METRIC = "event_handle_seconds"
"""The part of the consume lag that was the consumer's own work on the event (same labels)."""


@dataclass
class Histogram:
    """Cumulative bucket counts by upper bound (math.inf last), as Prometheus exposes them."""

    buckets: dict[float, float] = field(default_factory=dict)
    count: float = 0.0
    total: float = 0.0

    def minus(self, earlier: Histogram | None) -> Histogram:
        """What was observed since `earlier`; all of self when the process restarted in between
        (its counters went back to zero)."""
        if earlier is None or self.count < earlier.count:
            return self
        if any(n < earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()):
            return self
        return Histogram(
            {le: n - earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            self.count - earlier.count,
            self.total - earlier.total,
        )

    def plus(self, other: Histogram) -> Histogram:
        merged = dict(self.buckets)
        for le, n in other.buckets.items():
            merged[le] = merged.get(le, 0.0) + n
        return Histogram(merged, self.count + other.count, self.total + other.total)

    def quantile(self, q: float) -> float | None:
        """Estimate like PromQL's histogram_quantile: linear within the bucket; the largest finite
        bound when the quantile falls in the +Inf bucket."""
        if self.count <= 0:
            return None
        bounds = sorted(self.buckets)
        rank = q * self.count
        previous_bound, previous_count = 0.0, 0.0
        for le in bounds:
            cumulative = self.buckets[le]
            if cumulative >= rank:
                if le == float("inf"):
                    finite = [b for b in bounds if b != float("inf")]
                    return finite[-1] if finite else None
                if cumulative == previous_count:
                    return le
                return previous_bound + (le - previous_bound) * (rank - previous_count) / (
                    cumulative - previous_count
                )
            previous_bound, previous_count = le, cumulative
        return bounds[-1] if bounds else None

    def top_bucket_share(self) -> float:
        """The share of observations in the largest finite bucket and above it: when a quantile
        falls there, the bucket bounds say little (the value may be far beyond)."""
        finite = sorted(b for b in self.buckets if b != float("inf"))
        if self.count <= 0 or len(finite) < 2:
            return 0.0
        return (self.count - self.buckets.get(finite[-2], 0.0)) / self.count

    def as_dict(self) -> dict[str, Any]:
        finite = sorted(b for b in self.buckets if b != float("inf"))
        return {
            "count": int(self.count),
            "mean_s": self.total / self.count if self.count else None,
            "p50_s": self.quantile(0.50),
            "p95_s": self.quantile(0.95),
            "p99_s": self.quantile(0.99),
            "largest_bucket_s": finite[-1] if finite else None,
            "share_in_top_buckets": round(self.top_bucket_share(), 4),
        }


_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")


_LE = re.compile(r'le="([^"]+)"')


def parse_histograms(text: str, name: str) -> Histogram | None:
    """The histogram `name` in a Prometheus text exposition, summed over all its label sets;
    `name{fragment` sums only the label sets whose text contains `fragment`."""
    name, _, fragment = name.partition("{")
    found = False
    hist = Histogram()
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        metric, labels, value = match.group("name"), match.group("labels") or "", float(match.group("value"))
        if fragment and fragment not in labels:
            continue
        if metric == f"{name}_bucket":
            le_match = _LE.search(labels)
            if le_match is None:
                continue
            le = float("inf") if le_match.group(1) == "+Inf" else float(le_match.group(1))
            hist.buckets[le] = hist.buckets.get(le, 0.0) + value
            found = True
        elif metric == f"{name}_count":
            hist.count += value
            found = True
        elif metric == f"{name}_sum":
            hist.total += value
    return hist if found else None


async def scrape_histograms(
    client: Http, service_urls: Mapping[str, str], names: Iterable[str]
) -> dict[str, dict[str, Histogram]]:
    """{metric: {service: histogram}} from every service's /metrics (services that do not answer or
    do not have the metric are left out)."""
    wanted = list(names)
    result: dict[str, dict[str, Histogram]] = defaultdict(dict)

    async def one(service: str, url: str) -> None:
        with contextlib.suppress(*HttpError):
            answer = await client.get(f"{url.rstrip('/')}/metrics", timeout=5.0)
            if answer.status_code != 200:
                return
            for name in wanted:
                hist = parse_histograms(answer.text, name)
                if hist is not None:
                    result[name][service] = hist

    await asyncio.gather(*(one(s, u) for s, u in service_urls.items()))
    return dict(result)


def histogram_delta(
    after: Mapping[str, Mapping[str, Histogram]], before: Mapping[str, Mapping[str, Histogram]], name: str
) -> tuple[Histogram | None, dict[str, Histogram]]:
    """What `name` observed between two scrapes: all services together, and per service."""
    per_service: dict[str, Histogram] = {}
    for service, hist in after.get(name, {}).items():
        delta = hist.minus(before.get(name, {}).get(service))
        if delta.count > 0:
            per_service[service] = delta
    if not per_service:
        return None, {}
    total = Histogram()
    for hist in per_service.values():
        total = total.plus(hist)
    return total, per_service
