"""Service-to-service HTTP: one long-lived aiohttp session per process, with timeouts, retries and
a circuit breaker per peer service.

Retries (exponential backoff with jitter, via stamina) happen only where the call is idempotent:
reads, and money calls that carry an Idempotency-Key. A breaker that opened fails calls at once
instead of stacking timeouts on a peer that is down.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import stamina
import structlog

from sandwich.platform.identity import USER_HEADER, Identity
from sandwich.platform.observability import CIRCUIT_BREAKER_OPEN
from sandwich.platform.service_auth import CALLER_HEADER, ServiceKeys
from sandwich.platform.settings import Settings
from sandwich.platform.tracing import Status, StatusCode, answered, client_span, inject_into

log = structlog.get_logger("http")


class ServiceUnavailable(Exception):
    """A peer could not be reached (connection error, timeout, 5xx after retries, or breaker open)."""

    def __init__(self, service: str, reason: str):
        super().__init__(f"{service} is unavailable: {reason}")
        self.service = service
        self.reason = reason


class _RetryableStatus(Exception):
    def __init__(self, status: int):
        super().__init__(f"status {status}")
        self.status = status


@dataclass
class Response:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; lets one probe through after `reset_seconds`."""

    def __init__(
        self,
        threshold: int = 5,
        reset_seconds: float = 2.0,
        on_change: Callable[[bool], None] | None = None,
    ):
        self.threshold = threshold
        self.reset_seconds = reset_seconds
        self.failures = 0
        self.opened_at: float | None = None
        self._on_change = on_change  # told True when the breaker opens, False when it closes again

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        if time.monotonic() - self.opened_at >= self.reset_seconds:
            self.opened_at = time.monotonic()  # half-open: one probe per reset window
            return True
        return False

    def record_success(self) -> None:
        was_open = self.opened_at is not None
        self.failures = 0
        self.opened_at = None
        if was_open and self._on_change is not None:
            self._on_change(False)

    def record_failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            was_open = self.opened_at is not None
            self.opened_at = time.monotonic()
            if not was_open and self._on_change is not None:
                self._on_change(True)

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None


STREAM_CONNECTIONS = 4096
"""Event streams open at once through one process (each is a socket; the limit keeps a flood of
followers from running the process out of file descriptors)."""


class ServiceClient:
    """Calls other services by name; base URLs come from settings (SANDWICH_URL_<SERVICE>)."""

    def __init__(self, settings: Settings, *, retry_attempts: int = 3, keys: ServiceKeys | None = None):
        self.settings = settings
        # This service's credential goes with every call (service_auth.py); None only in unit tests.
        self.keys = keys
        # sock_connect, not connect: aiohttp's `connect` also counts the wait for a pooled
        # connection, so a burst of calls queued behind the pool's limit failed as if the peer were
        # away (and opened its breaker); `total` still bounds the whole call, the wait included.
        self.timeout = aiohttp.ClientTimeout(total=settings.http_timeout_seconds, sock_connect=1.0)
        self.retry_attempts = retry_attempts
        self._session: aiohttp.ClientSession | None = None
        self._streams: aiohttp.ClientSession | None = None
        self._breakers: dict[str, CircuitBreaker] = {}
        self._urls: dict[str, str] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=200, limit_per_host=100, ttl_dns_cache=300, keepalive_timeout=15
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self.timeout, json_serialize=lambda o: orjson.dumps(o).decode()
            )
        return self._session

    @property
    def streaming_session(self) -> aiohttp.ClientSession:
        """A session of its own for long-lived responses (Server-Sent Events): a follower holds its
        connection for minutes, and 100 of them would otherwise take every connection `session`
        may open to that service, leaving none for requests."""
        if self._streams is None or self._streams.closed:
            connector = aiohttp.TCPConnector(limit=STREAM_CONNECTIONS, limit_per_host=0, ttl_dns_cache=300)
            self._streams = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
        return self._streams

    def credential(self, service: str) -> dict[str, str]:
        """The header that proves to `service` that this service calls."""
        return {CALLER_HEADER: self.keys.caller_token(service)} if self.keys is not None else {}

    def user_headers(self, identity: Identity) -> dict[str, str]:
        """The user, asserted with this service's key: only the gateway's assertions are believed."""
        return {USER_HEADER: self.keys.user_assertion(identity)} if self.keys is not None else {}

    def breaker(self, service: str) -> CircuitBreaker:
        if service not in self._breakers:
            gauge = CIRCUIT_BREAKER_OPEN.labels(self.settings.service, service)
            self._breakers[service] = CircuitBreaker(on_change=lambda opened: gauge.set(int(opened)))
        return self._breakers[service]

    def base_url(self, service: str) -> str:
        if service not in self._urls:
            try:
                self._urls[service] = self.settings.service_url(service)
            except RuntimeError as exc:
                raise ServiceUnavailable(service, str(exc)) from exc
        return self._urls[service]

    async def close(self) -> None:
        for session in (self._session, self._streams):
            if session is not None:
                await session.close()

    async def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        raw_body: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        idempotent: bool | None = None,
        timeout: float | None = None,
    ) -> Response:
        """One call with the breaker, a timeout, and retries when the call is idempotent.

        4xx answers are returned, not raised: they are the peer's verdict. Connection errors,
        timeouts and 5xx become ServiceUnavailable once retries are spent.
        """
        with client_span(method, service, path, record_exception=False) as span:
            try:
                response = await self._request(
                    service, method, path, json, raw_body, headers, params, idempotent, timeout
                )
            except ServiceUnavailable as exc:
                span.set_status(Status(StatusCode.ERROR, exc.reason))
                raise
            answered(span, response.status)
            return response

    async def _request(
        self,
        service: str,
        method: str,
        path: str,
        json: Any,
        raw_body: bytes | None,
        headers: dict[str, str] | None,
        params: dict[str, str] | None,
        idempotent: bool | None,
        timeout: float | None,
    ) -> Response:
        retryable = method.upper() in ("GET", "HEAD", "PUT", "DELETE") if idempotent is None else idempotent
        attempts = self.retry_attempts if retryable else 1
        breaker = self.breaker(service)
        url = self.base_url(service) + path  # raises ServiceUnavailable when no URL is configured
        sent_headers = inject_into({**self.credential(service), **(headers or {})})
        request_timeout = aiohttp.ClientTimeout(total=timeout) if timeout else None
        try:
            async for attempt in stamina.retry_context(
                on=(aiohttp.ClientError, TimeoutError, _RetryableStatus),
                attempts=attempts,
                wait_initial=0.05,
                wait_max=1.0,
                wait_jitter=0.1,
                timeout=None,
            ):
                with attempt:
                    if not breaker.allow():
                        raise ServiceUnavailable(service, "circuit breaker open")
                    try:
                        response = await self._send(
                            method, url, json, raw_body, sent_headers, params, request_timeout
                        )
                    except (aiohttp.ClientError, TimeoutError):
                        breaker.record_failure()
                        raise
                    if response.status >= 500:
                        breaker.record_failure()
                        raise _RetryableStatus(response.status)
                    breaker.record_success()
                    return response
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServiceUnavailable(service, repr(exc)) from exc
        except _RetryableStatus as exc:
            raise ServiceUnavailable(service, str(exc)) from exc
        raise ServiceUnavailable(
            service, "no attempt made"
        )  # pragma: no cover - loop always returns or raises

    async def _send(
        self,
        method: str,
        url: str,
        json: Any,
        raw_body: bytes | None,
        headers: dict[str, str],
        params: dict[str, str] | None,
        timeout: aiohttp.ClientTimeout | None,
    ) -> Response:
        data = orjson.dumps(json) if json is not None else raw_body
        if data is not None:
            headers = {**headers, "Content-Type": "application/json"}
        kwargs: dict[str, Any] = {"data": data, "headers": headers, "params": params}
        if timeout is not None:
            kwargs["timeout"] = timeout
        async with self.session.request(method, url, **kwargs) as resp:
            raw = await resp.read()
            body = orjson.loads(raw) if raw and resp.content_type == "application/json" else None
            return Response(resp.status, body)
