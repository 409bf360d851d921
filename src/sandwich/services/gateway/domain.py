"""The public route table and the gateway's rules: who may call what, and where it goes.

Routing is data, not code: one table says, for every public path of API.md, which service answers
it and what the caller must be. Paths not in the table are 404 here and never reach a service.
"""

from __future__ import annotations

import re
import time
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
