"""Which service may call which route of which service: one table, for the code (every service's
credential check, platform/app.py) and, later, for the mesh's AuthorizationPolicies. And which
service may publish to and consume from which topic: the broker's permissions per service
(BUS_PUBLISHES, BUS_CONSUMES; platform/embedded/nats_access.py turns them into NATS users).

Every call a flow makes between services is a row of `INTERNAL_CALLS`; a route that no row names is
the gateway's to call (the public API it forwards, each service's /openapi.json), and nobody else's.
Health and metrics answer anyone: probes and Prometheus carry no service credential.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sandwich.platform.events import (
    TOPIC_BILLING_PAYMENTS,
    TOPIC_NOTIFICATIONS_ORDERS,
    TOPIC_ORDER_EVENTS,
    TOPIC_ORDERS_CREATE,
    TOPIC_ORDERS_PENDING,
    TOPIC_USER_EVENTS,
)

OPEN_PATHS = frozenset({"/health/live", "/health/ready", "/metrics"})
GATEWAY = "gateway"
WEB = "web"
PUBLIC_FRONTS = frozenset({GATEWAY, WEB})
"""The services people reach directly: the API gateway, and the apps (a client of the gateway's API).
They check their callers' tokens or sessions, not service credentials."""
EVENTS = "/internal/v1/events/{topic}"


@dataclass(frozen=True)
class Call:
    """`caller` may send `method path` to `callee` (path templates name their parameters in braces)."""

    caller: str
    callee: str
    method: str
    path: str
    pattern: re.Pattern[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\{[a-z_]+\}", "[^/]+", self.path)
        object.__setattr__(self, "pattern", re.compile(f"^{regex}$"))

    def matches(self, callee: str, method: str, path: str) -> bool:
        return callee == self.callee and method == self.method and bool(self.pattern.match(path))


INTERNAL_CALLS: tuple[Call, ...] = (
    # registration: auth creates the profile (seeds' path) and, in sync, the account
    Call("auth", "users", "POST", "/api/v1/user"),
    Call("auth", "billing", "POST", "/internal/v1/accounts"),
    # the gateway checks a token's version
    Call(GATEWAY, "auth", "GET", "/internal/v1/users/{user_id}/token-version"),
    # pricing and baskets
    Call("orders", "menu", "GET", "/internal/v1/menu/items"),
    Call("kitchen", "menu", "GET", "/internal/v1/menu/items"),
    Call("basket", "menu", "GET", "/internal/v1/menu/items"),
    Call("orders", "basket", "GET", "/internal/v1/baskets/{user_id}"),
    # payments and refunds (seeds' operate path)
    Call("orders", "billing", "POST", "/billing/account/operate"),
    Call("orders", "billing", "POST", "/internal/v1/orders/{order_id}/refund"),
    # fulfilment moves the order on the write side
    Call("kitchen", "orders", "POST", "/internal/v1/orders/{order_id}/assign"),
    Call("kitchen", "orders", "POST", "/internal/v1/orders/{order_id}/ready"),
    Call("kitchen", "orders", "POST", "/internal/v1/orders/{order_id}/cancel"),
    Call("delivery", "orders", "POST", "/internal/v1/orders/{order_id}/take"),
    Call("delivery", "orders", "POST", "/internal/v1/orders/{order_id}/complete"),
    Call("delivery", "kitchen", "GET", "/internal/v1/food-points/{food_point_id}"),
    # the write side's copy of an order, for whoever is ahead of the read model
    Call("order_info", "orders", "GET", "/internal/v1/orders/{order_id}"),
    Call("kitchen", "orders", "GET", "/internal/v1/orders/{order_id}"),
    Call("delivery", "orders", "GET", "/internal/v1/orders/{order_id}"),
    # contacts for letters
    Call("notifications", "users", "GET", "/internal/v1/users/{key}"),
    # the sync flow's pushes (platform/flows.py SUBSCRIBERS): orders' events, users' UserCreated
    Call("orders", "order_info", "POST", EVENTS),
    Call("orders", "notifications", "POST", "/api/v1/notification"),
    Call("orders", "kitchen", "POST", EVENTS),
    Call("orders", "delivery", "POST", EVENTS),
    Call("orders", "basket", "POST", EVENTS),
    Call("users", "billing", "POST", EVENTS),
)


def allowed_callers(callee: str, method: str, path: str) -> frozenset[str]:
    """Who may send `method path` to `callee`: the rows naming it; else, outside /internal/, the
    gateway alone."""
    named = frozenset(c.caller for c in INTERNAL_CALLS if c.matches(callee, method, path))
    if named or path.startswith("/internal/"):
        return named
    return frozenset({GATEWAY})


def is_open(path: str) -> bool:
    return path in OPEN_PATHS


# -- the broker --------------------------------------------------------------------------------------

BROKER_ADMIN = "sandwich-admin"
"""The embedded broker's user for the platform's own tools (replay, tests): it may do anything."""

BUS_PUBLISHES: dict[str, frozenset[str]] = {
    GATEWAY: frozenset({TOPIC_ORDERS_CREATE}),
    "users": frozenset({TOPIC_USER_EVENTS}),
    "orders": frozenset({TOPIC_ORDER_EVENTS, TOPIC_ORDERS_PENDING, TOPIC_NOTIFICATIONS_ORDERS}),
    "billing": frozenset({TOPIC_BILLING_PAYMENTS}),
}
"""The topics each service publishes to (every flow together): no other service may."""

BUS_CONSUMES: dict[str, frozenset[tuple[str, str]]] = {
    "billing": frozenset({(TOPIC_USER_EVENTS, "billing"), (TOPIC_ORDERS_PENDING, "billing-payments")}),
    "orders": frozenset(
        {(TOPIC_ORDERS_CREATE, "orders-requests"), (TOPIC_BILLING_PAYMENTS, "orders-payments")}
    ),
    "order_info": frozenset({(TOPIC_ORDER_EVENTS, "order_info")}),
    "notifications": frozenset(
        {(TOPIC_ORDER_EVENTS, "notifications"), (TOPIC_NOTIFICATIONS_ORDERS, "notifications")}
    ),
    "basket": frozenset({(TOPIC_ORDER_EVENTS, "basket")}),
    "kitchen": frozenset({(TOPIC_ORDER_EVENTS, "kitchen")}),
    "delivery": frozenset({(TOPIC_ORDER_EVENTS, "delivery")}),
}
"""(topic, consumer group) each service consumes (every flow together); it may also publish to the
dead-letter topic of each."""


def bus_users() -> list[str]:
    """The services that use the broker at all."""
    return sorted(set(BUS_PUBLISHES) | set(BUS_CONSUMES))
