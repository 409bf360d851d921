"""Structured logs, Prometheus metrics and the server span of every request, shared by every service.

The request middleware is plain ASGI (no BaseHTTPMiddleware) because it sits on every request of the
hot path; it opens the request's SERVER span (platform/tracing.py), in the W3C context the caller
sent, so that logs, outgoing calls and published events of one request carry the same trace.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import MutableMapping
from typing import Any

import structlog
from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandwich.platform.tracing import SpanKind, Status, StatusCode, context_from, current_ids, tracer

REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["service", "method", "route", "status"])
LAG_BUCKETS = (
    0.001, 0.002, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 30,
)  # fmt: skip
"""Fine around the 20 ms target of the event lag: a p99 estimated inside a bucket is off by at most
the bucket's width (with 0.02-0.05 one bucket, a true 25 ms read as up to 50)."""
LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["service", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS_HANDLED = Counter(
    "events_handled_total", "Events handled by consumers", ["service", "consumer", "outcome"]
)
EVENTS_PUBLISHED = Counter("outbox_events_published_total", "Outbox events published", ["service"])
EVENTS_DEAD_LETTERED = Counter(
    "events_dead_lettered_total",
    "Events a consumer gave up on and parked on the topic's dead-letter topic (each needs a person)",
    ["topic", "group"],
)
DATABASE_UP = Gauge(
    "database_up", "1 while the service's own database answers (checked every 10 s)", ["service"]
)
CIRCUIT_BREAKER_OPEN = Gauge(
    "circuit_breaker_open",
    "1 while calls to the peer fail at once (the breaker is open)",
    ["service", "peer"],
)
OUTBOX_BACKLOG = Gauge(
    "outbox_backlog", "Outbox rows not yet published (measured every few seconds)", ["service"]
)
EVENT_CONSUME_LAG = Histogram(
    "event_consume_lag_seconds",
    "Time from an event's creation (in its producer's transaction) to its consumer's commit",
    ["service", "consumer"],
    buckets=LAG_BUCKETS,
)
EVENT_HANDLE_SECONDS = Histogram(
    "event_handle_seconds",
    "Time a consumer took over one event it applied (inbox claim, effect, commit): the part of the "
    "consume lag spent in its own work rather than on the way or in its queue",
    ["service", "consumer"],
    buckets=LAG_BUCKETS,
)
FAULT_DELAY = Histogram(
    "fault_delay_seconds",
    "Delays injected on purpose (the benchmark's slow-service fault, SANDWICH_FAULT_DELAY_MS)",
    ["service"],
    buckets=(0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1, 5),
)
OUTBOX_LAG = Histogram(
    "outbox_publish_lag_seconds",
    "Time from commit to publish",
    ["service"],
    buckets=LAG_BUCKETS,
)


def configure_logging(service: str, level: str = "info") -> None:
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(stream=sys.stderr, level=numeric, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _add_trace,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service, pid=os.getpid())


def _add_trace(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    ids = current_ids()
    if ids is not None:
        event["trace_id"], event["span_id"] = ids
    return event


UNTRACED_PATHS = frozenset({"/health/live", "/health/ready", "/metrics"})
"""Probes and scrapes: every few seconds from every prober, traced they would bury the orders."""
TRACE_HEADERS = (b"traceparent", b"tracestate")
TRACE_ID_HEADER = b"x-trace-id"
"""Every traced answer names its trace: a person (or `sandwich demo`) can look it up in the backend."""
ROUTE_TEMPLATE_KEY = "sandwich.route_template"
"""Set in the ASGI scope by a catch-all route that knows better (the gateway's own route table):
the request's span and its metrics are named by it."""


class RequestObservabilityMiddleware:
    """Counts and times requests per route template, and binds the trace id of the request.

    The metric children are looked up once per (method, route, status) and kept: `labels()` takes a
    lock and builds its key on every call, on every request of every service.
    """

    def __init__(self, app: ASGIApp, service: str):
        self.app = app
        self.service = service
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status_holder = [500]
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
            await send(message)

        method = scope["method"]
        try:
            if scope["path"] in UNTRACED_PATHS:
                await self.app(scope, receive, send_wrapper)
                return
            carrier = {
                name.decode("latin-1"): value.decode("latin-1")
                for name, value in scope.get("headers") or ()
                if name in TRACE_HEADERS
            }
            with tracer().start_as_current_span(
                method, context=context_from(carrier), kind=SpanKind.SERVER, record_exception=False
            ) as span:
                trace_id = f"{span.get_span_context().trace_id:032x}".encode()

                async def send_with_trace_id(message: Message) -> None:
                    if message["type"] == "http.response.start":  # the caller can find its trace
                        message["headers"] = [*message.get("headers", ()), (TRACE_ID_HEADER, trace_id)]
                    await send_wrapper(message)

                try:
                    await self.app(scope, receive, send_with_trace_id)
                finally:
                    if span.is_recording():
                        self._describe(span, scope, status_holder[0])
        finally:
            template = (
                scope.get(ROUTE_TEMPLATE_KEY) or getattr(scope.get("route"), "path", None) or "unmatched"
            )
            self._counter(method, template, status_holder[0]).inc()
            self._timer(template).observe(time.perf_counter() - started)

    def _describe(self, span: Any, scope: Scope, status: int) -> None:
        """Name the span by its route template (known once routing ran), as the HTTP conventions do."""
        template = scope.get(ROUTE_TEMPLATE_KEY) or getattr(scope.get("route"), "path", None)
        span.update_name(f"{scope['method']} {template}" if template else scope["method"])
        span.set_attribute("http.request.method", scope["method"])
        span.set_attribute("http.response.status_code", status)
        span.set_attribute("url.path", scope["path"])
        if template:
            span.set_attribute("http.route", template)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))

    def _counter(self, method: str, template: str, status: int) -> Any:
        key = (method, template, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = REQUESTS.labels(self.service, method, template, str(status))
        return counter

    def _timer(self, template: str) -> Any:
        timer = self._timers.get(template)
        if timer is None:
            timer = self._timers[template] = LATENCY.labels(self.service, template)
        return timer
