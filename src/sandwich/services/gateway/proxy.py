"""Forwarding a public request to the service that owns it, over the process's aiohttp session
(event streams over a session of their own: a follower holds its connection for minutes).

Only a chosen set of headers crosses; the gateway adds its own credential and, for a signed-in user,
its signed assertion of the verified token's user (platform/service_auth.py). Event streams are
passed through as they arrive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from sandwich.platform.errors import error_response
from sandwich.platform.http import ServiceClient, ServiceUnavailable
from sandwich.platform.identity import Identity
from sandwich.platform.tracing import answered, client_span, inject_into

FORWARDED_REQUEST_HEADERS = ("content-type", "accept", "idempotency-key", "last-event-id")
FORWARDED_RESPONSE_HEADERS = ("content-type", "retry-after", "location", "cache-control")
MAX_BODY_BYTES = 1_000_000
# The client's whole request: longer than one service-to-service call, which has its own limits.
# Event streams are long-lived: only connecting is bounded for them.
PROXY_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=30.0, sock_connect=2.0, sock_read=30.0)


async def read_body(request: Request) -> bytes | None:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return None
    return body


def upstream_headers(
    http: ServiceClient, service: str, request: Request, identity: Identity | None
) -> dict[str, str]:
    headers = {name: request.headers[name] for name in FORWARDED_REQUEST_HEADERS if name in request.headers}
    inject_into(headers)  # the W3C context of the forwarding's CLIENT span
    client = request.client.host if request.client else ""
    headers["X-Forwarded-For"] = client
    headers.update(http.credential(service))
    if identity is not None:
        headers.update(http.user_headers(identity))
    return headers


def wants_event_stream(request: Request) -> bool:
    """A follower's request (an EventSource sends `Accept: text/event-stream`; the order's stream
    is `.../events`): it holds its connection to the service as long as it follows."""
    if request.method != "GET":
        return False
    return request.url.path.endswith("/events") or "text/event-stream" in request.headers.get("accept", "")


async def forward(
    http: ServiceClient, service: str, request: Request, body: bytes, identity: Identity | None
) -> Response:
    """The request sent on to `service`, in a CLIENT span of its own (an event stream's span ends
    when its answer starts)."""
    with client_span(request.method, service, request.url.path) as span:
        response = await _forward(http, service, request, body, identity)
        answered(span, response.status_code)
        return response


async def _forward(
    http: ServiceClient, service: str, request: Request, body: bytes, identity: Identity | None
) -> Response:
    breaker = http.breaker(service)
    if not breaker.allow():
        return error_response(503, "service_unavailable", f"{service} is unavailable, try again shortly.")
    try:
        url = http.base_url(service) + request.url.path
    except ServiceUnavailable:
        return error_response(503, "service_unavailable", f"{service} is not configured here.")
    # A request the upstream never read (a pooled connection closed under it) is sent again when
    # repeating it is safe: a read, a PUT, or a POST that carries an Idempotency-Key.
    safe_to_repeat = request.method in ("GET", "HEAD", "PUT") or "idempotency-key" in request.headers
    upstream = None
    session = http.streaming_session if wants_event_stream(request) else http.session
    for attempt in range(2 if safe_to_repeat else 1):
        try:
            upstream = await session.request(
                request.method,
                url,
                params=request.query_params,
                data=body or None,
                headers=upstream_headers(http, service, request, identity),
                allow_redirects=False,
                timeout=PROXY_TIMEOUT,
            )
            break
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            if safe_to_repeat and attempt == 0:
                continue
            breaker.record_failure()
            return error_response(503, "service_unavailable", f"{service} is unavailable, try again shortly.")
        except (aiohttp.ClientError, TimeoutError):
            breaker.record_failure()
            return error_response(503, "service_unavailable", f"{service} is unavailable, try again shortly.")
    assert upstream is not None
    headers = {
        name: upstream.headers[name] for name in FORWARDED_RESPONSE_HEADERS if name in upstream.headers
    }
    if upstream.content_type == "text/event-stream":
        breaker.record_success()
        return StreamingResponse(_stream(upstream), status_code=upstream.status, headers=headers)
    try:
        content = await upstream.read()
    except (aiohttp.ClientError, TimeoutError):
        breaker.record_failure()
        return error_response(503, "service_unavailable", f"{service} did not answer in time.")
    finally:
        upstream.release()
    # A service that answers is up, whatever it answered (a 503 `downstream_unavailable` is its
    # verdict about a peer): only transport failures open the gateway's breaker.
    breaker.record_success()
    return Response(content, status_code=upstream.status, headers=headers)


async def _stream(upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.content.iter_any():
            yield chunk
    except (aiohttp.ClientError, TimeoutError):
        return  # the upstream went away: the client's stream simply ends (it may reconnect)
    finally:
        upstream.release()
