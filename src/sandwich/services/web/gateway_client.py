"""The apps' one way into the platform: the gateway's public API, exactly as a curl would use it
(UI.md). The user's token travels from web's session to the gateway and nowhere else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from sandwich.platform.tracing import answered, client_span, inject_into

TIMEOUT = aiohttp.ClientTimeout(total=10, connect=3)


class GatewayDown(Exception):
    """The gateway could not be reached or answered 5xx: the page says so in words."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def items(self) -> list[Any]:
        """The `items` of a list answer; none when the answer is not one."""
        items = self.body.get("items") if isinstance(self.body, dict) else None
        return items if isinstance(items, list) else []

    @property
    def error_code(self) -> str:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return str(error.get("code")) if isinstance(error, dict) else "unexpected"

    @property
    def error_message(self) -> str:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return str(error.get("message")) if isinstance(error, dict) else ""


class GatewayClient:
    """`where` tells the gateway's base URL, asked on first use (the app is built before it runs)."""

    def __init__(self, where: Callable[[], str]) -> None:
        self._where = where
        self._base_url: str | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            self._base_url = self._where().rstrip("/")
        return self._base_url

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=TIMEOUT, json_serialize=lambda o: orjson.dumps(o).decode()
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @staticmethod
    def _headers(token: str | None, idempotency_key: str | None, language: str) -> dict[str, str]:
        headers = inject_into({"Accept-Language": language})  # the page's trace goes on to the API
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
        params: dict[str, str] | None = None,
        language: str = "en",
    ) -> Answer:
        with client_span(method, "gateway", path) as span:
            answer = await self._call(method, path, token, json, idempotency_key, params, language)
            answered(span, answer.status)
            return answer

    async def _call(
        self,
        method: str,
        path: str,
        token: str | None,
        json: Any,
        idempotency_key: str | None,
        params: dict[str, str] | None,
        language: str,
    ) -> Answer:
        try:
            async with self._http().request(
                method,
                self.base_url + path,
                json=json,
                params=params,
                headers=self._headers(token, idempotency_key, language),
            ) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GatewayDown(repr(exc)) from exc
        if status >= 500:
            raise GatewayDown(f"{method} {path}: {status}")
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        return Answer(status, body)

    @asynccontextmanager
    async def stream(
        self, path: str, *, token: str, last_event_id: str | None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The gateway's event stream of `path`, open for the block (no total timeout: it is long-lived)."""
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        timeout = aiohttp.ClientTimeout(total=None, connect=3, sock_read=60)
        try:
            async with self._http().get(self.base_url + path, headers=headers, timeout=timeout) as response:
                yield response
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GatewayDown(repr(exc)) from exc
