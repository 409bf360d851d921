"""The platform at a glance, for the operations console (`GET /api/v1/admin/system`, admin only).

The gateway asks every service for what each already publishes to anyone: liveness, readiness and
its Prometheus metrics. From the metrics it takes the requests answered and those answered 5xx, the
event lag's 99th percentile (estimated from the histogram's buckets, since the service started), the
outbox backlog, and orders per status (orders' own gauge). A service that does not answer is shown as
such; the overview still answers 200.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from sandwich.platform.http import ServiceClient
from sandwich.platform.settings import SERVICES

ASK_TIMEOUT = aiohttp.ClientTimeout(total=2.0, connect=1.0)


@dataclass(frozen=True)
class Deployment:
    """How this platform runs, as the overview names it: the interaction style (the flow: "hybrid",
    "sync" or "async"), the broker in use ("nats", "kafka", or "none" when no broker carries events),
    and where each service answers. app.py reads them from the settings; this module only shows them."""

    interaction_style: str
    broker: str
    service_url: Callable[[str], str]


@dataclass
class Figures:
    """What one service's /metrics says."""

    requests: float = 0.0
    server_errors: float = 0.0
    lag_buckets: dict[float, float] = field(default_factory=dict)
    outbox_backlog: float | None = None
    orders_by_status: dict[str, int] = field(default_factory=dict)

    @property
    def error_rate(self) -> float | None:
        return None if self.requests == 0 else self.server_errors / self.requests

    @property
    def lag_p99_ms(self) -> float | None:
        return percentile_ms(self.lag_buckets, 0.99)


def percentile_ms(buckets: dict[float, float], quantile: float) -> float | None:
    """The quantile of a cumulative histogram (upper bound -> count), linear within its bucket."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] == 0:
        return None
    wanted = quantile * ordered[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in ordered:
        if count >= wanted:
            if math.isinf(upper):
                return round(lower * 1000, 1)
            share = 0.0 if count == below else (wanted - below) / (count - below)
            return round((lower + (upper - lower) * share) * 1000, 1)
        lower, below = upper, count
    return None


def read_figures(text: str) -> Figures:
    figures = Figures()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "http_requests_total":
                figures.requests += sample.value
                if sample.labels.get("status", "").startswith("5"):
                    figures.server_errors += sample.value
            elif sample.name == "event_consume_lag_seconds_bucket":
                upper = float(sample.labels["le"])
                figures.lag_buckets[upper] = figures.lag_buckets.get(upper, 0.0) + sample.value
            elif sample.name == "outbox_backlog":
                figures.outbox_backlog = (figures.outbox_backlog or 0.0) + sample.value
            elif sample.name == "orders_by_status":
                figures.orders_by_status[sample.labels["status"]] = int(sample.value)
    return figures


async def _ask(session: aiohttp.ClientSession, url: str) -> tuple[int, str] | None:
    try:
        async with session.get(url, timeout=ASK_TIMEOUT) as answer:
            return answer.status, await answer.text()
    except (aiohttp.ClientError, TimeoutError):
        return None


async def _one(session: aiohttp.ClientSession, name: str, base_url: str) -> tuple[dict[str, Any], Figures]:
    live, ready, metrics = await asyncio.gather(
        _ask(session, f"{base_url}/health/live"),
        _ask(session, f"{base_url}/health/ready"),
        _ask(session, f"{base_url}/metrics"),
    )
    figures = read_figures(metrics[1]) if metrics is not None and metrics[0] == 200 else Figures()
    row: dict[str, Any] = {
        "service": name,
        "live": live is not None and live[0] == 200,
        "ready": ready is not None and ready[0] == 200,
        "requests": int(figures.requests),
        "error_rate": figures.error_rate,
        "event_lag_p99_ms": figures.lag_p99_ms,
        "outbox_backlog": None if figures.outbox_backlog is None else int(figures.outbox_backlog),
    }
    return row, figures


async def system_overview(http: ServiceClient, deployment: Deployment) -> dict[str, Any]:
    session = http.session
    named = [(name, deployment.service_url(name)) for name in SERVICES]
    answers = await asyncio.gather(*(_one(session, name, url) for name, url in named))
    orders: dict[str, int] = {}
    for _, figures in answers:
        orders.update(figures.orders_by_status)
    return {
        "flow": deployment.interaction_style,
        "broker": deployment.broker,
        "services": [row for row, _ in answers],
        "orders_by_status": orders,
    }
