"""The platform's spans around messages (platform/tracing.py), against the OpenTelemetry SDK's own
in-memory exporter: what a producer sends in the headers, what a consumer's span hangs under."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from sandwich.platform import tracing
from sandwich.platform.bus.base import Message

pytestmark = pytest.mark.unit

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
WRITER_SPAN = "00f067aa0ba902b7"
ENVELOPE_TRACE = {"traceparent": f"00-{TRACE_ID}-{WRITER_SPAN}-01"}


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Spans recorded by a provider of the test's own (the process's global one is left alone)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracers", [provider.get_tracer("test")])
    monkeypatch.setitem(tracing._state, "exporting", True)
    yield exporter
    provider.shutdown()


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_spans_are_exported_only_when_an_exporter_is_configured(environ: dict[str, str], on: bool) -> None:
    assert tracing.exporting(environ) is on


def test_not_exporting_a_producer_makes_no_span_and_sends_no_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(tracing._state, "exporting", False)
    spans = tracing.ProducerSpans("nats", [("order.events", "e1", ENVELOPE_TRACE)])
    assert spans.headers == [{}]
    spans.end(1, None)


def test_each_message_gets_a_producer_span_under_its_writer_and_its_context_in_the_headers(
    exported: InMemorySpanExporter,
) -> None:
    spans = tracing.ProducerSpans(
        "kafka", [("order.events", "e1", ENVELOPE_TRACE), ("order.events", "e2", ENVELOPE_TRACE)]
    )
    spans.end(1, RuntimeError("broker away"))
    first, second = exported.get_finished_spans()
    for span, headers in zip((first, second), spans.headers, strict=True):
        assert span.kind is SpanKind.PRODUCER and span.name == "publish order.events"
        assert f"{span.context.trace_id:032x}" == TRACE_ID
        assert f"{span.parent.span_id:016x}" == WRITER_SPAN  # type: ignore[union-attr]
        assert headers["traceparent"] == f"00-{TRACE_ID}-{span.context.span_id:016x}-01"
    assert first.status.status_code is StatusCode.UNSET
    assert second.status.status_code is StatusCode.ERROR  # the broker did not take it


def test_a_consumer_span_is_the_child_of_the_producer_and_linked_to_it(
    exported: InMemorySpanExporter,
) -> None:
    producer = tracing.ProducerSpans("nats", [("order.events", "e1", ENVELOPE_TRACE)])
    producer.end(1, None)
    message = Message("order.events", "order-1", b"{}", headers=producer.headers[0])
    with tracing.consumer_span(message, ENVELOPE_TRACE, "kitchen", "e1"):
        pass
    publish, process = exported.get_finished_spans()
    assert process.kind is SpanKind.CONSUMER and process.name == "process order.events"
    assert process.parent.span_id == publish.context.span_id  # type: ignore[union-attr]
    assert [link.context.span_id for link in process.links] == [publish.context.span_id]
    assert (process.attributes or {}).get("messaging.consumer.group.name") == "kitchen"


def test_without_a_producer_the_consumer_hangs_under_the_transaction_that_wrote_the_event(
    exported: InMemorySpanExporter,
) -> None:
    message = Message("order.events", "order-1", b"{}")
    with tracing.consumer_span(message, ENVELOPE_TRACE, "order_info", "e1"):
        pass
    (process,) = exported.get_finished_spans()
    assert f"{process.parent.span_id:016x}" == WRITER_SPAN  # type: ignore[union-attr]
    assert not process.links
