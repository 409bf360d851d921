"""The order and its state machine (API.md), and pricing from the menu.

Plain Python: the same rules serve every interaction style. A transition that the machine does not
allow raises IllegalTransition, which the API answers with 409. The fulfilment steps are named
(`assigned`, `cooked`, `taken`, `delivered`): each decides who may take it and what a repeat of it
is, and raises a domain error the API maps to a status (NotYourFoodPoint, NotYourDelivery,
AlreadyTaken).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any


class OrderStatus(StrEnum):
    REJECTED = "rejected"  # async only: orders found the accepted request invalid; born terminal
    CREATED = "created"
    PAID = "paid"
    PAYMENT_FAILED = "payment_failed"
    ASSIGNED = "assigned"
    READY = "ready"
    IN_DELIVERY = "in_delivery"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.CREATED: frozenset({OrderStatus.PAID, OrderStatus.PAYMENT_FAILED, OrderStatus.CANCELLED}),
    OrderStatus.PAID: frozenset({OrderStatus.ASSIGNED, OrderStatus.CANCELLED}),
    OrderStatus.ASSIGNED: frozenset({OrderStatus.READY, OrderStatus.CANCELLED}),
    OrderStatus.READY: frozenset({OrderStatus.IN_DELIVERY}),
    OrderStatus.IN_DELIVERY: frozenset({OrderStatus.COMPLETED}),
    OrderStatus.COMPLETED: frozenset(),
    OrderStatus.PAYMENT_FAILED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}


class IllegalTransition(Exception):
    def __init__(self, current: OrderStatus, wanted: OrderStatus):
        super().__init__(f"an order in {current} cannot become {wanted}")
        self.current = current
        self.wanted = wanted


class NotYourFoodPoint(Exception):
    """A food point acted on an order assigned to another one."""


class NotYourDelivery(Exception):
    """A courier acted on an order another courier took."""


class AlreadyTaken(Exception):
    """A courier tried to take an order another courier took first."""


class UnknownMenuItem(Exception):
    def __init__(self, menu_item_id: str):
        super().__init__(f"no menu item {menu_item_id}")
        self.menu_item_id = menu_item_id


@dataclass(frozen=True)
class OrderLine:
    menu_item_id: str
    name: str
    quantity: int
    price: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "menu_item_id": self.menu_item_id,
            "name": self.name,
            "quantity": self.quantity,
            "price": self.price,
        }


@dataclass(frozen=True)
class Delivery:
    address: str
    lat: float
    lon: float

    def as_dict(self) -> dict[str, Any]:
        return {"address": self.address, "lat": self.lat, "lon": self.lon}


@dataclass(frozen=True)
class Order:
    order_id: str
    user_id: str
    username: str
    status: OrderStatus
    items: tuple[OrderLine, ...]
    total: int
    delivery: Delivery
    created_at: datetime
    updated_at: datetime
    version: int = 1
    food_point_id: str | None = None
    courier: str | None = None
    payment_operation_id: str | None = None
    idempotency_key: str | None = field(default=None, compare=False)
    reason: str | None = None  # why it was rejected or cancelled
    refund_pending: bool = False
    from_basket: bool = False

    def transition(self, wanted: OrderStatus, at: datetime, **changes: Any) -> Order:
        """The order after moving to `wanted`, one version later; IllegalTransition if not allowed."""
        if wanted not in TRANSITIONS[self.status]:
            raise IllegalTransition(self.status, wanted)
        return replace(self, status=wanted, updated_at=at, version=self.version + 1, **changes)


def merge_lines(requested: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Sum quantities of repeated menu items, keeping first-seen order."""
    merged: dict[str, int] = {}
    for menu_item_id, quantity in requested:
        merged[menu_item_id] = merged.get(menu_item_id, 0) + quantity
    return list(merged.items())


def price_lines(
    requested: list[tuple[str, int]], menu: dict[str, tuple[str, int]]
) -> tuple[list[OrderLine], int]:
    """Order lines priced from the menu ({id: (name, price)}), whatever the client sent, and the total."""
    lines = []
    for menu_item_id, quantity in merge_lines(requested):
        if menu_item_id not in menu:
            raise UnknownMenuItem(menu_item_id)
        name, price = menu[menu_item_id]
        lines.append(OrderLine(menu_item_id, name, quantity, price))
    return lines, sum(line.price * line.quantity for line in lines)


class RejectionReason(StrEnum):
    """Why orders refused a request the gateway had accepted (async, ADR 002): the contract's codes."""

    UNKNOWN_MENU_ITEM = "unknown_menu_item"
    BASKET_EMPTY = "basket_empty"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    MENU_UNAVAILABLE = "menu_unavailable"
    BASKET_UNAVAILABLE = "basket_unavailable"


def rejected(order: Order, reason: RejectionReason) -> Order:
    """The request as a rejected order: terminal, nothing priced, nothing to pay or refund."""
    return replace(order, status=OrderStatus.REJECTED, items=(), total=0, reason=reason.value)


CANCELLABLE = frozenset(status for status, nexts in TRANSITIONS.items() if OrderStatus.CANCELLED in nexts)


def cancelled(order: Order, at: datetime, reason: str) -> Order:
    """The order cancelled; whatever was or may yet be paid for it is to be refunded."""
    return order.transition(OrderStatus.CANCELLED, at, reason=reason, refund_pending=True)


def assigned(order: Order, food_point_id: str, at: datetime) -> Order:
    """The kitchen chose a food point; assigning it again to the same point changes nothing."""
    if order.status is OrderStatus.ASSIGNED and order.food_point_id == food_point_id:
        return order
    return order.transition(OrderStatus.ASSIGNED, at, food_point_id=food_point_id)


def cooked(order: Order, food_point_id: str, at: datetime) -> Order:
    """The order's own food point marked it ready (again: nothing changes)."""
    if order.food_point_id != food_point_id:
        raise NotYourFoodPoint(order.order_id)
    if order.status is OrderStatus.READY:
        return order
    return order.transition(OrderStatus.READY, at)


def taken(order: Order, courier: str, at: datetime) -> Order:
    """A courier took the order to deliver it; the same courier taking it again changes nothing."""
    if order.status is OrderStatus.IN_DELIVERY:
        if order.courier == courier:
            return order
        raise AlreadyTaken(order.order_id)
    return order.transition(OrderStatus.IN_DELIVERY, at, courier=courier)


def delivered(order: Order, courier: str, at: datetime) -> Order:
    """The order's courier delivered it (again: nothing changes)."""
    if order.courier is not None and order.courier != courier:
        raise NotYourDelivery(order.order_id)
    if order.status is OrderStatus.COMPLETED:
        return order
    return order.transition(OrderStatus.COMPLETED, at)
