"""Traces with OpenTelemetry: one trace per order, from the gateway (or the apps) to the letter.

Spans are made at the platform's few choke points, written once, so no service has tracing code:
- a SERVER span for every request a service answers (observability.RequestObservabilityMiddleware);
- a CLIENT span for every call to another service (http.ServiceHttp, the gateway's proxy, web's
  client of the gateway), its context sent in the W3C `traceparent` header;
- a span for every database transaction (db.Database.begin);
- a PRODUCER span for every event the outbox relay publishes, its context in the message's headers
  (NATS headers, Kafka record headers, or the sync flow's push request), its parent the context of
  the transaction that wrote the outbox row (kept in the event's envelope);
- a CONSUMER span for every event a handler takes (inbox.idempotent_consumer), child of the
  producer's span and linked to it.

Export is by the standard OTLP variables and off unless configured: `OTEL_EXPORTER_OTLP_ENDPOINT`
(or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or `OTEL_TRACES_EXPORTER=otlp`) turns it on, OTLP over
HTTP; `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` choose the sampling (parent-based, every
trace by default; `parentbased_traceidratio` with a ratio samples that share of the traces, and the
services behind follow the gateway's decision). Off, the SDK still gives every request a trace id
(nothing is recorded), so log lines and events stay correlated.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, Tracer

__all__ = [
    "Link",
    "ProducerSpans",
    "SpanKind",
    "Status",
    "StatusCode",
    "answered",
    "client_span",
    "configure_tracing",
    "consumer_span",
    "context_from",
    "current_ids",
    "exporting",
    "exporting_now",
    "inject_into",
    "shutdown_tracing",
    "span_context_from",
    "trace_id_of",
    "tracer",
]

if TYPE_CHECKING:
    from sandwich.platform.bus.base import Message

CarrierT = TypeVar("CarrierT", bound=MutableMapping[str, str])

NAMESPACE = "sandwich"
INSTRUMENTATION = "sandwich.platform"
_state: dict[str, TracerProvider | bool] = {}
_tracers: list[Tracer] = []


def exporting(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether spans are recorded and exported: an OTLP endpoint or exporter is configured."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return exporter == "otlp" or bool(endpoint)


def configure_tracing(service: str) -> bool:
    """The process's tracer provider, made once; True when spans are exported."""
    if "provider" in _state:
        return bool(_state["exporting"])
    on = exporting()
    resource = Resource.create({"service.name": service, "service.namespace": NAMESPACE})
    # Not exporting: sampled never, so nothing is recorded, but ids are still made and passed on.
    provider = TracerProvider(resource=resource, sampler=None if on else ALWAYS_OFF)
    if on:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _state["provider"], _state["exporting"] = provider, on
    _tracers.append(provider.get_tracer(INSTRUMENTATION))
    return on


def exporting_now() -> bool:
    """Whether this process records and exports spans (after configure_tracing)."""
    return bool(_state.get("exporting"))


def shutdown_tracing() -> None:
    """Export what is still buffered (at a service's shutdown)."""
    provider = _state.get("provider")
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def tracer() -> Tracer:
    """The platform's tracer (asked for on every span: kept once the provider is made)."""
    return _tracers[-1] if _tracers else trace.get_tracer(INSTRUMENTATION)


def inject_into(carrier: CarrierT, context: Context | None = None) -> CarrierT:
    """`carrier` with the W3C trace context (`traceparent`, `tracestate`) of `context` (default: now)."""
    propagate.inject(carrier, context=context)
    return carrier


def context_from(carrier: Mapping[str, str]) -> Context:
    """The context a carrier (headers, an envelope's `trace`) holds; an empty one when it holds none."""
    return propagate.extract(carrier)


def span_context_from(carrier: Mapping[str, str]) -> SpanContext | None:
    """The span a carrier names, for a link; None when it names none."""
    found = trace.get_current_span(propagate.extract(carrier)).get_span_context()
    return found if found.is_valid else None


@contextmanager
def client_span(method: str, peer: str, path: str, *, record_exception: bool = True) -> Iterator[Span]:
    """The CLIENT span of one call to `peer`, current for the block, so that the headers injected in
    it carry it; `answered` records the answer's status."""
    with tracer().start_as_current_span(
        f"{method} {peer}", kind=SpanKind.CLIENT, record_exception=record_exception
    ) as span:
        if span.is_recording():
            span.set_attribute("http.request.method", method)
            span.set_attribute("server.address", peer)
            span.set_attribute("url.path", path)
        yield span


def answered(span: Span, status: int) -> None:
    if span.is_recording():
        span.set_attribute("http.response.status_code", status)


def trace_id_of(carrier: Mapping[str, str]) -> str:
    """The trace id a carrier's `traceparent` names (hex), or "" when it names none."""
    context = span_context_from(carrier)
    return f"{context.trace_id:032x}" if context is not None else ""


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span, as hex, for log lines; None outside any span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


class ProducerSpans:
    """One PRODUCER span per message of a batch the outbox relay publishes, each a child of the
    context of the transaction that wrote the message (its envelope's `trace`), each carried to the
    consumers in the message's headers. Not exporting, no span is made and the headers stay empty:
    consumers then take the envelope's own context."""

    def __init__(self, system: str, messages: Sequence[tuple[str, str, Mapping[str, str]]]):
        """`messages`: (topic, event id, the envelope's trace carrier) of each message, in order."""
        self._spans: list[Span] = []
        self.headers: list[dict[str, str]] = [{} for _ in messages]
        if not exporting_now():
            return
        for index, (topic, event_id, carrier) in enumerate(messages):
            span = tracer().start_span(
                f"publish {topic}",
                context=context_from(carrier),
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": system,
                    "messaging.operation.type": "send",
                    "messaging.destination.name": topic,
                    "messaging.message.id": event_id,
                },
            )
            self._spans.append(span)
            inject_into(self.headers[index], trace.set_span_in_context(span))

    def end(self, acknowledged: int, error: BaseException | None) -> None:
        """The broker stored the first `acknowledged` messages; the rest failed with `error`."""
        for index, span in enumerate(self._spans):
            if index >= acknowledged:
                span.set_status(Status(StatusCode.ERROR, repr(error) if error else "not acknowledged"))
            span.end()


@contextmanager
def consumer_span(
    message: Message, envelope_trace: Mapping[str, str], group: str, event_id: str
) -> Iterator[None]:
    """A handler's CONSUMER span: the child of the PRODUCER span whose context came in the message's
    headers (a broker's message) or of the request that brought it (the sync flow's push), and
    linked to it; without either, the child of the transaction that wrote the event."""
    in_headers = context_from(message.headers)  # extracted once: the parent and the link
    producer = trace.get_current_span(in_headers).get_span_context()
    if producer.is_valid:
        parent: Context | None = in_headers
    elif trace.get_current_span().get_span_context().is_valid:
        parent = None  # the push's request: its SERVER span is current
    else:
        parent = context_from(envelope_trace)
    links = [Link(producer)] if producer.is_valid and exporting_now() else None
    with tracer().start_as_current_span(
        f"process {message.topic}",
        context=parent,
        kind=SpanKind.CONSUMER,
        links=links,
        record_exception=True,
    ) as span:
        if span.is_recording():
            span.set_attribute("messaging.operation.type", "process")
            span.set_attribute("messaging.destination.name", message.topic)
            span.set_attribute("messaging.consumer.group.name", group)
            span.set_attribute("messaging.message.id", event_id)
        yield
