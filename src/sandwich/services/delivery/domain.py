"""Delivery's rules as plain Python: which order events matter, how far a pickup point is, which
offers a courier sees first, and what a refused take or complete means.

The deliveries table is a local copy of the orders a courier may deal with ('ready' onwards). It is
fed by OrderEvents, which come at least once and not necessarily in order: only an event with a
higher per-order version than the stored one changes a row, so duplicates and stale events change
nothing. Taking an order is decided locally first (one conditional UPDATE, so exactly one courier
wins) and then confirmed by orders, the write side, whose later events have the last word.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

EARTH_RADIUS_KM = 6371.0088  # the mean Earth radius (IUGG)


class DeliveryStatus(StrEnum):
    READY = "ready"
    IN_DELIVERY = "in_delivery"
    COMPLETED = "completed"


# The order statuses this service keeps a row for; every other status of an order is ignored.
TRACKED_STATUSES = frozenset(status.value for status in DeliveryStatus)


class InvalidDeliveryEvent(ValueError):
    """An order event delivery cannot apply (a malformed id, time or version)."""


class InvalidPosition(ValueError):
    """A courier position that is not a pair of finite coordinates in range."""


@dataclass(frozen=True)
class Position:
    lat: float
    lon: float


def great_circle_km(a: Position, b: Position) -> float:
    """Distance along the Earth's surface (haversine on a sphere of the mean radius), in kilometres."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat = lat2 - lat1
    dlon = math.radians(b.lon - a.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _coordinate(name: str, raw: str, limit: float) -> float:
    try:
        value = float(raw.strip())
    except (AttributeError, ValueError) as exc:
        raise InvalidPosition(f"{name} must be a number, not {raw!r}") from exc
    if not math.isfinite(value) or not -limit <= value <= limit:
        raise InvalidPosition(f"{name} must be between {-limit:g} and {limit:g}")
    return value


def parse_position(lat: str | None, lon: str | None) -> Position | None:
    """The courier's position from the query `?lat=&lon=`: both or neither (None), in range."""
    if lat is None and lon is None:
        return None
    if lat is None or lon is None:
        raise InvalidPosition("give both lat and lon, or neither")
    return Position(_coordinate("lat", lat, 90.0), _coordinate("lon", lon, 180.0))


def parse_order_id(raw: str) -> uuid.UUID | None:
    """The order id of a path, or None when it is not a UUID (answered like an unknown order)."""
    try:
        return uuid.UUID(raw)
    except (AttributeError, ValueError):
        return None


def parse_time(value: str) -> datetime:
    """RFC 3339 text to an aware UTC datetime; a time without an offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError) as exc:
        raise InvalidDeliveryEvent(f"not an RFC 3339 time: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Pickup:
    """Where a courier collects an order: the food point's location as kitchen describes it."""

    lat: float
    lon: float
    address: str | None = None

    @property
    def position(self) -> Position:
        return Position(self.lat, self.lon)

    @classmethod
    def from_food_point(cls, body: Any) -> Pickup | None:
        """From kitchen's food point document, or None when it has no usable location."""
        if not isinstance(body, Mapping):
            return None
        try:
            lat, lon = float(body["lat"]), float(body["lon"])
        except (KeyError, TypeError, ValueError):
            return None
        if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
            return None
        address = body.get("address")
        return cls(lat, lon, address if isinstance(address, str) else None)


@dataclass(frozen=True)
class DeliveryUpdate:
    """One OrderEvent as delivery needs it: the envelope's version and the order's delivery facts."""

    order_id: uuid.UUID
    version: int
    status: DeliveryStatus
    at: datetime
    food_point_id: str | None
    dropoff_address: str
    dropoff_lat: float
    dropoff_lon: float
    items: list[dict[str, Any]]
    total: int
    courier: str | None

    @classmethod
    def from_event(cls, version: int, event: Mapping[str, Any]) -> DeliveryUpdate | None:
        """From an OrderEvent payload already checked for shape; None when its status is not tracked."""
        status = str(event["status"])
        if status not in TRACKED_STATUSES:
            return None
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidDeliveryEvent(f"version must be a positive integer, not {version!r}")
        order = event["order"]
        order_id = parse_order_id(str(order["order_id"]))
        if order_id is None:
            raise InvalidDeliveryEvent(f"order_id is not a UUID: {order['order_id']!r}")
        delivery = order["delivery"]
        return cls(
            order_id=order_id,
            version=version,
            status=DeliveryStatus(status),
            at=parse_time(str(event["at"])),
            food_point_id=order.get("food_point_id"),
            dropoff_address=str(delivery["address"]),
            dropoff_lat=float(delivery["lat"]),
            dropoff_lon=float(delivery["lon"]),
            items=[dict(item) for item in order["items"]],
            total=int(order["total"]),
            # A ready order has no courier yet, whatever the snapshot says.
            courier=None if status == DeliveryStatus.READY else order.get("courier"),
        )

    @property
    def ready_at(self) -> datetime | None:
        return self.at if self.status is DeliveryStatus.READY else None

    @property
    def taken_at(self) -> datetime | None:
        return self.at if self.status is DeliveryStatus.IN_DELIVERY else None

    @property
    def completed_at(self) -> datetime | None:
        return self.at if self.status is DeliveryStatus.COMPLETED else None


def supersedes(stored_version: int | None, incoming_version: int) -> bool:
    """Only a strictly newer version changes a row: duplicates and stale events change nothing."""
    return stored_version is None or incoming_version > stored_version


@dataclass(frozen=True)
class Delivery:
    """One row of the deliveries table."""

    order_id: str
    status: DeliveryStatus
    food_point_id: str | None
    pickup: Pickup | None
    dropoff_address: str
    dropoff_lat: float
    dropoff_lon: float
    items: list[dict[str, Any]]
    total: int
    courier: str | None
    version: int
    ready_at: datetime | None
    taken_at: datetime | None = None
    completed_at: datetime | None = None

    @property
    def offered(self) -> bool:
        """Ready and not taken: what the couriers' list shows."""
        return self.status is DeliveryStatus.READY and self.courier is None


@dataclass(frozen=True)
class Offer:
    delivery: Delivery
    distance_km: float | None = None


_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


def _age_key(delivery: Delivery) -> tuple[datetime, str]:
    return (delivery.ready_at or _FAR_FUTURE, delivery.order_id)


def rank_offers(deliveries: Iterable[Delivery], origin: Position | None) -> list[Offer]:
    """The offered deliveries in the order a courier sees them.

    With the courier's position: nearest pickup first (ties: oldest first), those whose pickup point is
    not known yet at the end, oldest first. Without it: oldest first.
    """
    offered = sorted((d for d in deliveries if d.offered), key=_age_key)
    if origin is None:
        return [Offer(delivery) for delivery in offered]
    located = [
        Offer(delivery, great_circle_km(origin, delivery.pickup.position))
        for delivery in offered
        if delivery.pickup is not None
    ]
    unlocated = [Offer(delivery) for delivery in offered if delivery.pickup is None]
    # sorted() is stable, so equal distances keep the oldest-first order established above.
    return sorted(located, key=lambda offer: offer.distance_km or 0.0) + unlocated


def public_offer(offer: Offer, *, with_distance: bool) -> dict[str, Any]:
    """An offer as GET /api/v1/delivery/orders shows it."""
    delivery = offer.delivery
    pickup: dict[str, Any] = {"lat": None, "lon": None}
    if delivery.pickup is not None:
        pickup = {"lat": delivery.pickup.lat, "lon": delivery.pickup.lon}
        if delivery.pickup.address is not None:
            pickup["address"] = delivery.pickup.address
    body: dict[str, Any] = {
        "order_id": delivery.order_id,
        "status": delivery.status.value,
        "food_point_id": delivery.food_point_id,
        "pickup": pickup,
        "delivery": {
            "address": delivery.dropoff_address,
            "lat": delivery.dropoff_lat,
            "lon": delivery.dropoff_lon,
        },
        "items": delivery.items,
        "total": delivery.total,
    }
    if with_distance:
        body["distance_km"] = None if offer.distance_km is None else round(offer.distance_km, 3)
    return body


class TakeOutcome(StrEnum):
    """What a take did locally: won, or why the conditional UPDATE matched no row."""

    WON = "won"
    NOT_FOUND = "not_found"
    ALREADY_MINE = "already_mine"
    ALREADY_TAKEN = "already_taken"
    ALREADY_COMPLETED = "already_completed"
    # Ready and untaken when looked at again: a take that held it was undone meanwhile; try again.
    RETRY = "retry"


def refused_take(current: tuple[str, str | None] | None, courier: str) -> TakeOutcome:
    """Explain a take whose conditional UPDATE matched no row, from the row's (status, courier)."""
    if current is None:
        return TakeOutcome.NOT_FOUND
    status, holder = current
    if status == DeliveryStatus.COMPLETED:
        return TakeOutcome.ALREADY_COMPLETED
    if holder is not None:
        return TakeOutcome.ALREADY_MINE if holder == courier else TakeOutcome.ALREADY_TAKEN
    if status == DeliveryStatus.READY:
        return TakeOutcome.RETRY
    return TakeOutcome.ALREADY_TAKEN


# Order statuses (as orders names them) before an order is ready for a courier.
BEFORE_READY = frozenset({"created", "paid", "assigned"})


class DeliveryRefused(Exception):
    """A courier's take or complete refused, by delivery or by orders through it: `code` and
    `message` are the contract's error body; api.py picks the status by the class (409 unless said)."""

    code = "conflict"
    message = "The order cannot be delivered so."

    def __init__(self, message: str | None = None, *, code: str | None = None):
        self.message = message or type(self).message
        self.code = code or type(self).code
        super().__init__(self.message)


class OrderNotFound(DeliveryRefused):
    code = "order_not_found"
    message = "No such order."


class NotYourDelivery(DeliveryRefused):
    code = "not_your_delivery"
    message = "This order is not yours to deliver."


class AlreadyTaken(DeliveryRefused):
    code = "already_taken"
    message = "Another courier took this order."


class AlreadyCompleted(DeliveryRefused):
    code = "already_completed"
    message = "This order has been delivered already."


class NotReady(DeliveryRefused):
    code = "not_ready"
    message = "The order is not ready for delivery yet."


class NotInDelivery(DeliveryRefused):
    code = "not_in_delivery"
    message = "The order is not in delivery."


class NotDeliverable(DeliveryRefused):
    code = "not_deliverable"


def unknown_order_refusal(write_side_status: str | None) -> DeliveryRefused:
    """Why a take of an order delivery has no row for is refused, given what orders says.

    None means orders does not know it either. A `ready` order whose event has not arrived yet is
    refused as not ready: the next attempt, a moment later, finds it offered.
    """
    if write_side_status is None:
        return OrderNotFound()
    if write_side_status in BEFORE_READY:
        return NotReady()
    if write_side_status == DeliveryStatus.READY:
        return NotReady("The order is not offered to couriers yet; try again in a moment.")
    if write_side_status in (DeliveryStatus.IN_DELIVERY, DeliveryStatus.COMPLETED):
        return AlreadyTaken()
    return NotDeliverable(f"The order is {write_side_status}: there is nothing to deliver.")


class CompleteOutcome(StrEnum):
    ALLOWED = "allowed"
    ALREADY_COMPLETED = "already_completed"
    NOT_FOUND = "not_found"
    NOT_YOURS = "not_yours"
    NOT_IN_DELIVERY = "not_in_delivery"


def may_complete(current: tuple[str, str | None] | None, courier: str) -> CompleteOutcome:
    """Whether `courier` may complete the delivery with this (status, courier)."""
    if current is None:
        return CompleteOutcome.NOT_FOUND
    status, holder = current
    if holder != courier:
        return CompleteOutcome.NOT_YOURS
    if status == DeliveryStatus.COMPLETED:
        return CompleteOutcome.ALREADY_COMPLETED
    if status != DeliveryStatus.IN_DELIVERY:
        return CompleteOutcome.NOT_IN_DELIVERY
    return CompleteOutcome.ALLOWED


def missing_pickups(deliveries: Sequence[Delivery]) -> set[str]:
    """Food points whose location the offered deliveries still lack."""
    return {d.food_point_id for d in deliveries if d.pickup is None and d.food_point_id and d.offered}
