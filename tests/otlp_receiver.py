"""An OTLP/HTTP trace receiver for the tests: what a collector or Jaeger would receive, decoded with
OpenTelemetry's own protobuf definitions and kept in memory, by trace id.

It runs in a thread of the test process (the platforms the tests start are other processes), on a
free local port; the services export to it by the standard `OTEL_EXPORTER_OTLP_ENDPOINT`.
"""

from __future__ import annotations

import gzip
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    service: str
    links: tuple[str, ...] = ()  # span ids this span links to
    attributes: dict[str, object] = field(default_factory=dict, compare=False, hash=False)


def _attributes(pairs: object) -> dict[str, object]:
    found: dict[str, object] = {}
    for pair in pairs:  # type: ignore[attr-defined]
        value = pair.value
        found[pair.key] = getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None
    return found


class OtlpReceiver:
    """POST /v1/traces (protobuf, plain or gzip): every span kept, by trace id."""

    def __init__(self) -> None:
        self._spans: dict[str, list[ReceivedSpan]] = defaultdict(list)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver._keep(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _keep(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            service = str(_attributes(resource_spans.resource.attributes).get("service.name", ""))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received = ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=KINDS.get(span.kind, "unspecified"),
                        service=service,
                        links=tuple(link.span_id.hex() for link in span.links),
                        attributes=_attributes(span.attributes),
                    )
                    with self._lock:
                        self._spans[received.trace_id].append(received)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans.get(trace_id, ()))
