"""The benchmark's HTTP client: one aiohttp session for the whole load, answers read whole.

Used by the load (`load.py`), the setup of customers (`customers.py`) and what reads the platform
after a phase (`observe.py`, `outcomes.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

HttpError = (aiohttp.ClientError, TimeoutError)
"""What a request can fail with (besides an HTTP status)."""


@dataclass
class Answer:
    status_code: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        return orjson.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class Http:
    """The benchmark's HTTP client: one aiohttp session with as many connections as requests in
    flight. (Http was measured here at 8-11 ms of client CPU per request with 64 in
    flight, aiohttp at 0.12 ms: with httpx the load generator, on the same two cores as the platform,
    was the platform's biggest competitor.)"""

    def __init__(self, base_url: str, concurrency: int, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.size = max(8, concurrency)
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=10.0)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Keep-alive shorter than the services' (75 s): never reuse a connection being closed.
            connector = aiohttp.TCPConnector(limit=self.size, keepalive_timeout=30.0)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Answer:
        url = self._url(path)
        sent_headers = dict(headers or {})
        data = None
        if json is not None:
            data = orjson.dumps(json)
            sent_headers["Content-Type"] = "application/json"
        async with self.session.request(
            method,
            url,
            data=data,
            headers=sent_headers,
            params={k: str(v) for k, v in (params or {}).items()} or None,
            timeout=aiohttp.ClientTimeout(total=timeout) if timeout is not None else None,
        ) as answer:
            return Answer(answer.status, answer.headers, await answer.read())

    def _url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base_url}{path}"

    async def get(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("GET", path, **kwargs)

    async def first_status_past(
        self, path: str, past: str, *, headers: Mapping[str, str], timeout: float
    ) -> str | None:
        """Follow a Server-Sent Events stream of statuses (`data: {"status": ...}` lines) until one
        is not `past`; None when the stream was refused or ended before one came."""
        sent_headers = {**headers, "Accept": "text/event-stream"}
        async with self.session.get(
            self._url(path), headers=sent_headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as answer:
            if answer.status != 200:
                return None
            async for line in answer.content:
                if line.startswith(b"data:"):
                    status = orjson.loads(line[5:]).get("status")
                    if status is not None and status != past:
                        return str(status)
        return None

    async def post(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("POST", path, **kwargs)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def client_for(base_url: str, concurrency: int, timeout: float = 30.0) -> Http:
    """One pooled client for the whole load: as many connections as requests in flight."""
    return Http(base_url, concurrency, timeout)
