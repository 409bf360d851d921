"""The public route table and the gateway's rules: who may call what, and where it goes.

Routing is data, not code: one table says, for every public path of API.md, which service answers
it and what the caller must be. Paths not in the table are 404 here and never reach a service.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class Access(StrEnum):
    PUBLIC = "public"  # no token needed
    USER = "user"  # any valid token
    ADMIN = "admin"  # a token with the admin role


@dataclass(frozen=True)
class Route:
    methods: frozenset[str]
    template: str
    service: str
    access: Access = Access.USER
    pattern: re.Pattern[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\{[a-z_]+\}", r"[^/]+", self.template)
        object.__setattr__(self, "pattern", re.compile(f"^{regex}$"))


def _r(methods: str, template: str, service: str, access: Access = Access.USER) -> Route:
    return Route(frozenset(methods.split(",")), template, service, access)


ROUTES: tuple[Route, ...] = (
    _r("POST", "/api/v1/auth/register", "auth", Access.PUBLIC),
    _r("POST", "/api/v1/auth/login", "auth", Access.PUBLIC),
    _r("GET", "/.well-known/jwks.json", "auth", Access.PUBLIC),
    _r("GET", "/api/v1/admin/users", "auth", Access.ADMIN),
    _r("PUT", "/api/v1/admin/users/{username}/roles", "auth", Access.ADMIN),
    _r("GET,PUT", "/api/v1/user/me", "users"),
    _r("GET", "/api/v1/user/{username}", "users"),
    _r("GET", "/api/v1/billing/account", "billing"),
    _r("POST", "/api/v1/billing/account/deposit", "billing"),
    _r("GET", "/api/v1/billing/account/operations", "billing"),
    _r("GET", "/api/v1/menu", "menu"),
    _r("POST", "/api/v1/admin/menu", "menu", Access.ADMIN),
    _r("POST", "/api/v1/order", "orders"),
    _r("GET", "/api/v1/orders", "order_info"),
    _r("GET", "/api/v1/orders/{order_id}", "order_info"),
    _r("POST", "/api/v1/orders/{order_id}/cancel", "orders"),
    _r("GET", "/api/v1/orders/{order_id}/events", "order_info"),
    _r("GET", "/api/v1/notifications", "notifications"),
    _r("GET", "/api/v1/basket", "basket"),
    _r("PUT", "/api/v1/basket/items/{menu_item_id}", "basket"),
    _r("GET", "/api/v1/kitchen/orders", "kitchen"),
    _r("POST", "/api/v1/kitchen/orders/{order_id}/ready", "kitchen"),
    _r("GET", "/api/v1/delivery/orders", "delivery"),
    _r("GET", "/api/v1/delivery/mine", "delivery"),
    _r("POST", "/api/v1/delivery/orders/{order_id}/take", "delivery"),
    _r("POST", "/api/v1/delivery/orders/{order_id}/complete", "delivery"),
    _r("GET", "/api/v1/admin/food-points", "kitchen", Access.ADMIN),
    _r("POST", "/api/v1/admin/food-points", "kitchen", Access.ADMIN),
    _r("PATCH", "/api/v1/admin/food-points/{food_point_id}", "kitchen", Access.ADMIN),
    _r("PUT", "/api/v1/admin/food-points/{food_point_id}/stock/{ingredient}", "kitchen", Access.ADMIN),
)


class RouteMatch(StrEnum):
    FOUND = "found"
    WRONG_METHOD = "wrong_method"
    UNKNOWN = "unknown"


def match_route(
    method: str, path: str, routes: tuple[Route, ...] = ROUTES
) -> tuple[RouteMatch, Route | None]:
    """The route for a request; a known path with another method is told apart (405, not 404)."""
    path_known = False
    for route in routes:
        if route.pattern.match(path):
            if method in route.methods:
                return RouteMatch.FOUND, route
            path_known = True
    return (RouteMatch.WRONG_METHOD if path_known else RouteMatch.UNKNOWN), None


class RateLimiter:
    """A token bucket per client key: `rate_per_minute` requests, refilled continuously."""

    def __init__(
        self, rate_per_minute: int, clock: Callable[[], float] | None = None, max_keys: int = 100_000
    ):
        self.capacity = float(rate_per_minute)
        self.refill_per_second = rate_per_minute / 60.0
        self.clock = clock or time.monotonic
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> tuple[bool, float]:
        """(allowed, seconds until the next request would be allowed)."""
        now = self.clock()
        tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.refill_per_second)
        if len(self._buckets) >= self.max_keys and key not in self._buckets:
            self._buckets.clear()
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return True, 0.0
        self._buckets[key] = (tokens, now)
        return False, (1.0 - tokens) / self.refill_per_second


KNOWN_CLIENT_SECONDS = 86_400.0
"""How long a client that logged in to an account is exempt from that account's global cap."""


class LoginGuard:
    """Failed logins counted per (username, client) and per username, in a sliding window.

    - One client may fail `per_client` times for one username within `window_seconds`; then that
      pair waits until its oldest failure leaves the window. A success clears the pair's failures.
      Other usernames from that client, and that username from other clients, are not affected.
    - One username may fail `per_account` times within the window from all clients together (an
      attacker rotating addresses); then it is refused, except from a client that logged in to
      it successfully within the last day (KNOWN_CLIENT_SECONDS): the owner's usual client still gets in.
    """

    def __init__(
        self,
        per_client: int,
        per_account: int,
        window_seconds: float,
        clock: Callable[[], float] | None = None,
        max_keys: int = 100_000,
    ):
        self.per_client = max(1, per_client)
        self.per_account = max(1, per_account)
        self.window = window_seconds
        self.clock = clock or time.monotonic
        self.max_keys = max_keys
        self._pairs: dict[tuple[str, str], deque[float]] = {}
        self._accounts: dict[str, deque[float]] = {}
        self._known: dict[tuple[str, str], float] = {}

    def _recent(self, failures: deque[float] | None, now: float) -> deque[float] | None:
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def wait(self, username: str, client: str) -> float:
        """Seconds until this client may try this username again; 0 when it may now."""
        now = self.clock()
        waits = [0.0]
        pair = self._recent(self._pairs.get((username, client)), now)
        if pair is not None and len(pair) >= self.per_client:
            waits.append(pair[0] + self.window - now)
        known = self._known.get((username, client))
        if known is None or now - known > KNOWN_CLIENT_SECONDS:
            account = self._recent(self._accounts.get(username), now)
            if account is not None and len(account) >= self.per_account:
                waits.append(account[0] + self.window - now)
        return max(waits)

    def failed(self, username: str, client: str) -> float:
        """Count a failure; returns its time, by which `succeeded`/`forget` can take it back."""
        now = self.clock()
        self._make_room(now)
        self._pairs.setdefault((username, client), deque(maxlen=self.per_client)).append(now)
        self._accounts.setdefault(username, deque(maxlen=self.per_account)).append(now)
        return now

    def forget(self, username: str, client: str, at: float) -> None:
        """Take back a failure counted in advance (the attempt turned out not to be a wrong password)."""
        for failures in (self._pairs.get((username, client)), self._accounts.get(username)):
            if failures is not None and at in failures:
                failures.remove(at)

    def succeeded(self, username: str, client: str, at: float | None = None) -> None:
        """The client logged in: its failures for the username are cleared, it is known to the account."""
        if at is not None:
            self.forget(username, client, at)
        now = self.clock()
        self._pairs.pop((username, client), None)
        if len(self._known) >= self.max_keys:
            self._known = {key: at for key, at in self._known.items() if now - at <= KNOWN_CLIENT_SECONDS}
            if len(self._known) >= self.max_keys:
                self._known.clear()
        self._known[(username, client)] = now

    def _make_room(self, now: float) -> None:
        """Forget failures that left the window once the tables are full (bounded memory)."""
        if len(self._pairs) < self.max_keys and len(self._accounts) < self.max_keys:
            return
        for table in (self._pairs, self._accounts):
            for key in [key for key, failures in table.items() if not self._recent(failures, now)]:
                del table[key]  # type: ignore[arg-type]
        if len(self._pairs) >= self.max_keys:
            self._pairs.clear()
        if len(self._accounts) >= self.max_keys:
            self._accounts.clear()


class TokenVersions:
    """The current token version of each user, as auth says, cached for `ttl_seconds` per user.

    A token carries the version of its user at login (claim `ver`, 0 when absent); auth raises the
    version on every role change, so an older token stops working within the TTL. None: auth
    knows no such user (deleted, or never existed).
    """

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] | None = None, max_keys: int = 100_000):
        self.ttl = ttl_seconds
        self.clock = clock or time.monotonic
        self.max_keys = max_keys
        self._cache: dict[str, tuple[int | None, float]] = {}

    def fresh(self, user_id: str) -> tuple[bool, int | None]:
        """(found and younger than the TTL, the version)."""
        found = self._cache.get(user_id)
        if found is None or self.clock() - found[1] > self.ttl:
            return False, None
        return True, found[0]

    def last_known(self, user_id: str, max_age: float) -> tuple[bool, int | None]:
        """The version last heard, if heard within max_age seconds (used while auth is unreachable)."""
        found = self._cache.get(user_id)
        if found is None or self.clock() - found[1] > max_age:
            return False, None
        return True, found[0]

    def remember(self, user_id: str, version: int | None) -> None:
        if len(self._cache) >= self.max_keys and user_id not in self._cache:
            self._cache.clear()
        self._cache[user_id] = (version, self.clock())
