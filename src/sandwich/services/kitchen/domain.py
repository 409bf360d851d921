"""The kitchen's rules as plain Python: distances, what an order needs, which food point may take it.

ADR 000 step 4: a paid order goes to the nearest food point that accepts delivery orders, has a free
slot in its pool and has every ingredient the order needs. The ranking here works on a snapshot; the
storage's conditional updates are what make the reservation true under concurrency.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)

MAX_NAME_LENGTH = 200
MAX_ADDRESS_LENGTH = 300
MAX_INGREDIENT_LENGTH = 100
MAX_CAPACITY = 1_000_000
MAX_STOCK = 10**12

NO_FOOD_POINT_IN_TIME = "no food point could take the order in time"


class AssignmentState(StrEnum):
    """An order's life in the kitchen after it was given to a food point.

    reserved: the slot and the ingredients are held, orders has not confirmed the assignment yet;
    confirmed: orders says the order is assigned here (cooks see it);
    ready: cooked, the slot is free again, the ingredients are used up;
    released: cancelled or refused by orders; the slot and the ingredients were given back.
    """

    RESERVED = "reserved"
    CONFIRMED = "confirmed"
    READY = "ready"
    RELEASED = "released"


HOLDING_STATES: tuple[str, ...] = (AssignmentState.RESERVED.value, AssignmentState.CONFIRMED.value)


class UnknownMenuItem(Exception):
    """A line's menu item has no recipe (the menu does not know it): the order cannot be cooked."""

    def __init__(self, menu_item_id: str):
        super().__init__(f"no recipe for menu item {menu_item_id}")
        self.menu_item_id = menu_item_id


def clean_name(name: str) -> str:
    """Ingredient names are compared without surrounding or repeated whitespace (as the menu stores them)."""
    return " ".join(name.split())


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres between two points given in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


Recipe = Sequence[tuple[str, int]]


def compute_needs(lines: Iterable[tuple[str, int]], recipes: Mapping[str, Recipe]) -> dict[str, int]:
    """Ingredients an order needs: recipe quantity x ordered quantity, summed per ingredient name.

    `lines` are (menu_item_id, quantity); raises UnknownMenuItem when a line has no recipe.
    """
    needs: dict[str, int] = {}
    for menu_item_id, quantity in lines:
        recipe = recipes.get(menu_item_id)
        if recipe is None:
            raise UnknownMenuItem(menu_item_id)
        for ingredient, per_item in recipe:
            name = clean_name(ingredient)
            needs[name] = needs.get(name, 0) + per_item * quantity
    return {name: amount for name, amount in needs.items() if amount > 0}


@dataclass(frozen=True)
class PointState:
    """A food point as the assigner sees it: where it is, how busy, and its stock of what is needed."""

    food_point_id: str
    lat: float
    lon: float
    capacity: int
    active_orders: int
    accepts_delivery: bool
    stock: Mapping[str, int] = field(default_factory=dict)

    @property
    def has_free_slot(self) -> bool:
        return self.active_orders < self.capacity

    def has_ingredients(self, needs: Mapping[str, int]) -> bool:
        return all(self.stock.get(name, 0) >= amount for name, amount in needs.items())

    def can_take(self, needs: Mapping[str, int]) -> bool:
        return self.accepts_delivery and self.has_free_slot and self.has_ingredients(needs)

    def distance_km(self, lat: float, lon: float) -> float:
        return haversine_km(self.lat, self.lon, lat, lon)


def rank_candidates(
    points: Iterable[PointState], needs: Mapping[str, int], lat: float, lon: float
) -> list[PointState]:
    """The points that can take the order, nearest to the delivery point first (ties by id)."""
    eligible = [point for point in points if point.can_take(needs)]
    return sorted(eligible, key=lambda point: (point.distance_km(lat, lon), point.food_point_id))


def nearest_candidate(
    points: Iterable[PointState], needs: Mapping[str, int], lat: float, lon: float
) -> PointState | None:
    ranked = rank_candidates(points, needs, lat, lon)
    return ranked[0] if ranked else None


@dataclass(frozen=True)
class FoodPoint:
    food_point_id: str
    name: str
    address: str
    lat: float
    lon: float
    capacity: int
    accepts_delivery: bool
    active_orders: int
    created_at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "food_point_id": self.food_point_id,
            "name": self.name,
            "address": self.address,
            "lat": self.lat,
            "lon": self.lon,
            "capacity": self.capacity,
            "accepts_delivery": self.accepts_delivery,
            "active_orders": self.active_orders,
            "created_at": rfc3339(self.created_at),
        }


@dataclass(frozen=True)
class PendingOrder:
    """A paid order waiting for a food point."""

    order_id: str
    user_id: str
    username: str
    items: list[dict[str, Any]]
    delivery: dict[str, Any]
    lat: float
    lon: float
    paid_at: datetime

    def lines(self) -> list[tuple[str, int]]:
        return [(str(item["menu_item_id"]), int(item["quantity"])) for item in self.items]

    def menu_item_ids(self) -> list[str]:
        return sorted({menu_item_id for menu_item_id, _ in self.lines()})


@dataclass(frozen=True)
class Assignment:
    order_id: str
    food_point_id: str
    user_id: str
    username: str
    items: list[dict[str, Any]]
    needs: dict[str, int]
    delivery: dict[str, Any]
    state: AssignmentState
    paid_at: datetime
    assigned_at: datetime

    @property
    def holds_reservation(self) -> bool:
        return self.state in (AssignmentState.RESERVED, AssignmentState.CONFIRMED)

    def for_cook(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "food_point_id": self.food_point_id,
            "username": self.username,
            "status": "assigned",
            # False for the moment between reserving here and orders confirming the assignment.
            "confirmed": self.state is AssignmentState.CONFIRMED,
            "items": [
                {
                    "menu_item_id": item.get("menu_item_id"),
                    "name": item.get("name"),
                    "quantity": item.get("quantity"),
                }
                for item in self.items
            ],
            "ingredients": [
                {"name": name, "quantity": amount} for name, amount in sorted(self.needs.items())
            ],
            "delivery": self.delivery,
            "paid_at": rfc3339(self.paid_at),
            "assigned_at": rfc3339(self.assigned_at),
        }


class ReadyVerdict(StrEnum):
    ASK_ORDERS = "ask_orders"
    NOT_ASSIGNED = "not_assigned"
    NOT_YOURS = "not_yours"


def ready_verdict(assignment: Assignment | None, cook_food_point_id: str) -> ReadyVerdict:
    """What the kitchen can say about a cook's "ready" before asking orders."""
    if assignment is None:
        return ReadyVerdict.NOT_ASSIGNED
    if assignment.food_point_id != cook_food_point_id:
        return ReadyVerdict.NOT_YOURS
    if not assignment.holds_reservation:
        return ReadyVerdict.NOT_ASSIGNED
    return ReadyVerdict.ASK_ORDERS


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
