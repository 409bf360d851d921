"""The outbound adapters of notifications: contact data from the users service, cached in-process
for a short time (the use cases see the `Contacts` port; the SMTP side is the sender loop's).

Every letter needs the recipient's e-mail address, and a busy customer gets several letters in a few
minutes; the short TTL keeps users off the hot path without letting a changed address linger long.
Only answers are cached: a miss or an outage is asked again next time. Concurrent look-ups of one
user share a single call, so a burst of events for one customer asks users once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

import structlog

from sandwich.platform.http import ServiceClient, ServiceUnavailable
from sandwich.services.notifications.domain import Contact

log = structlog.get_logger("contacts")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Clock = Callable[[], float]


class Contacts(Protocol):
    """Where a user's letters go."""

    async def contact(self, user_id: str) -> Contact | None:
        """None when users knows no such user; raises ServiceUnavailable when users is away."""
        ...


class TtlCache(Generic[K, V]):
    """A dict whose entries expire `ttl_seconds` after they were put; bounded, oldest evicted first."""

    def __init__(self, ttl_seconds: float, *, max_entries: int = 10_000, clock: Clock = time.monotonic):
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if self._clock() >= expires_at:
            del self._entries[key]
            return None
        return value

    def put(self, key: K, value: V) -> None:
        if self.ttl_seconds <= 0:
            return
        self._entries.pop(key, None)
        if len(self._entries) >= self.max_entries:
            self._evict()
        self._entries[key] = (self._clock() + self.ttl_seconds, value)

    def _evict(self) -> None:
        now = self._clock()
        for key in [k for k, (expires_at, _) in self._entries.items() if expires_at <= now]:
            del self._entries[key]
        while len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]  # dicts keep insertion order: the oldest

    def __len__(self) -> int:
        return len(self._entries)


class ContactBook:
    """Contacts by user id: GET {users}/internal/v1/users/{user_id}, through the TTL cache."""

    def __init__(self, http: ServiceClient, ttl_seconds: float, *, clock: Clock = time.monotonic):
        self.http = http
        self.cache: TtlCache[str, Contact] = TtlCache(ttl_seconds, clock=clock)
        self._inflight: dict[str, asyncio.Future[Contact | None]] = {}

    async def contact(self, user_id: str) -> Contact | None:
        """The user's contact; None when users knows no such user; ServiceUnavailable when users is away."""
        key = str(uuid.UUID(user_id))
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(key))
            self._inflight[key] = pending
            pending.add_done_callback(lambda done: self._forget(key, done))
        # A waiter that is cancelled must not cancel the call the other waiters share.
        return await asyncio.shield(pending)

    def _forget(self, key: str, done: asyncio.Future[Contact | None]) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]
        if not done.cancelled():
            done.exception()  # retrieved here, so an error nobody awaited is not reported as lost

    async def _fetch(self, key: str) -> Contact | None:
        try:
            response = await self.http.request("users", "GET", f"/internal/v1/users/{key}")
        except RuntimeError as exc:  # no URL configured for users: as good as unreachable
            raise ServiceUnavailable("users", str(exc)) from exc
        if response.status == 404:
            return None
        body = response.body
        if response.status != 200 or not isinstance(body, dict):
            raise ServiceUnavailable("users", f"unexpected answer {response.status}")
        contact = Contact(
            user_id=key,
            username=str(body.get("username") or ""),
            email=body.get("email") or None,
            full_name=body.get("full_name") or None,
        )
        self.cache.put(key, contact)
        return contact
