"""Delivery's rules: great-circle distance, the courier's position, the order of offers, which
events matter, and what a refused take or complete means."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandwich.services.delivery.domain import (
    AlreadyTaken,
    CompleteOutcome,
    Delivery,
    DeliveryStatus,
    DeliveryUpdate,
    InvalidDeliveryEvent,
    InvalidPosition,
    NotDeliverable,
    NotReady,
    OrderNotFound,
    Pickup,
    Position,
    TakeOutcome,
    great_circle_km,
    may_complete,
    missing_pickups,
    parse_order_id,
    parse_position,
    public_offer,
    rank_offers,
    refused_take,
    supersedes,
    unknown_order_refusal,
)

pytestmark = pytest.mark.unit

T0 = datetime(2024, 1, 5, 12, 0, tzinfo=UTC)
MOSCOW = Position(55.7558, 37.6173)
ST_PETERSBURG = Position(59.9343, 30.3351)


def delivery(
    n: int,
    *,
    pickup: Pickup | None = None,
    minutes: int = 0,
    status: DeliveryStatus = DeliveryStatus.READY,
    courier: str | None = None,
    food_point_id: str | None = "fp-1",
) -> Delivery:
    return Delivery(
        order_id=f"00000000-0000-4000-8000-{n:012d}",
        status=status,
        food_point_id=food_point_id,
        pickup=pickup,
        dropoff_address="Tverskaya 1",
        dropoff_lat=55.76,
        dropoff_lon=37.61,
        items=[{"menu_item_id": "m1", "name": "BLT", "quantity": 1, "price": 34900}],
        total=34900,
        courier=courier,
        version=4,
        ready_at=T0 + timedelta(minutes=minutes),
    )


# --- distance -------------------------------------------------------------------------------------


def test_distance_of_a_point_to_itself_is_zero() -> None:
    assert great_circle_km(MOSCOW, MOSCOW) == 0.0


def test_one_degree_of_the_equator_is_about_111_km() -> None:
    assert great_circle_km(Position(0, 0), Position(0, 1)) == pytest.approx(111.195, abs=0.01)


def test_moscow_to_st_petersburg_is_about_634_km() -> None:
    assert great_circle_km(MOSCOW, ST_PETERSBURG) == pytest.approx(634, abs=3)


def test_distance_is_symmetric_and_crosses_the_antimeridian_the_short_way() -> None:
    a, b = Position(10, 179.5), Position(10, -179.5)
    assert great_circle_km(a, b) == pytest.approx(great_circle_km(b, a))
    assert great_circle_km(a, b) < 120


def test_antipodes_are_half_the_circumference_apart() -> None:
    assert great_circle_km(Position(0, 0), Position(0, 180)) == pytest.approx(math.pi * 6371.0088, rel=1e-9)
    assert great_circle_km(Position(90, 0), Position(-90, 0)) == pytest.approx(math.pi * 6371.0088, rel=1e-9)


# --- the courier's position -----------------------------------------------------------------------


def test_no_position_is_fine() -> None:
    assert parse_position(None, None) is None


def test_a_position_is_parsed() -> None:
    assert parse_position("55.75", " 37.61") == Position(55.75, 37.61)
    assert parse_position("-90", "180") == Position(-90.0, 180.0)


@pytest.mark.parametrize(("lat", "lon"), [("55.7", None), (None, "37.6")])
def test_one_coordinate_without_the_other_is_invalid(lat: str | None, lon: str | None) -> None:
    with pytest.raises(InvalidPosition, match="both"):
        parse_position(lat, lon)


@pytest.mark.parametrize(
    ("lat", "lon"),
    [
        ("90.01", "0"),
        ("-91", "0"),
        ("0", "180.5"),
        ("0", "-181"),
        ("nan", "0"),
        ("0", "inf"),
        ("north", "0"),
        ("", "0"),
        ("0", "1e999"),
    ],
)
def test_coordinates_out_of_range_or_not_numbers_are_invalid(lat: str, lon: str) -> None:
    with pytest.raises(InvalidPosition):
        parse_position(lat, lon)


def test_order_ids_that_are_not_uuids_are_none() -> None:
    assert parse_order_id("not-a-uuid") is None
    assert parse_order_id("") is None
    some = uuid.uuid4()
    assert parse_order_id(str(some)) == some


# --- the order of offers --------------------------------------------------------------------------


def test_without_a_position_offers_are_oldest_first() -> None:
    deliveries = [delivery(1, minutes=5), delivery(2, minutes=1), delivery(3, minutes=3)]
    offers = rank_offers(deliveries, None)
    assert [o.delivery.order_id[-1] for o in offers] == ["2", "3", "1"]
    assert all(o.distance_km is None for o in offers)


def test_with_a_position_offers_are_nearest_first() -> None:
    far = delivery(1, pickup=Pickup(ST_PETERSBURG.lat, ST_PETERSBURG.lon), minutes=0)
    near = delivery(2, pickup=Pickup(55.76, 37.62), minutes=9)
    middle = delivery(3, pickup=Pickup(56.86, 35.9), minutes=5)  # Tver
    offers = rank_offers([far, near, middle], MOSCOW)
    assert [o.delivery for o in offers] == [near, middle, far]
    distances = [o.distance_km for o in offers]
    assert distances == sorted(distances)  # type: ignore[type-var]
    assert distances[0] is not None and distances[0] < 1


def test_equal_distances_keep_the_oldest_first() -> None:
    same = Pickup(55.76, 37.62)
    younger, older = delivery(1, pickup=same, minutes=7), delivery(2, pickup=same, minutes=2)
    assert [o.delivery for o in rank_offers([younger, older], MOSCOW)] == [older, younger]


def test_offers_whose_pickup_is_unknown_come_last_oldest_first() -> None:
    unknown_young = delivery(1, minutes=9)
    unknown_old = delivery(2, minutes=1)
    located = delivery(3, pickup=Pickup(ST_PETERSBURG.lat, ST_PETERSBURG.lon), minutes=5)
    offers = rank_offers([unknown_young, located, unknown_old], MOSCOW)
    assert [o.delivery for o in offers] == [located, unknown_old, unknown_young]
    assert offers[1].distance_km is None


def test_taken_and_completed_deliveries_are_not_offered() -> None:
    offered = delivery(1)
    taken = delivery(2, status=DeliveryStatus.IN_DELIVERY, courier="bob")
    done = delivery(3, status=DeliveryStatus.COMPLETED, courier="bob")
    # A row still 'ready' but holding a courier is not offered either.
    held = delivery(4, courier="bob")
    assert [o.delivery for o in rank_offers([taken, offered, done, held], None)] == [offered]
    assert [o.delivery for o in rank_offers([taken, offered, done, held], MOSCOW)] == [offered]


def test_public_offer_shape() -> None:
    located = delivery(1, pickup=Pickup(55.76, 37.62, "Arbat 2"))
    offer = rank_offers([located], MOSCOW)[0]
    body = public_offer(offer, with_distance=True)
    assert body == {
        "order_id": located.order_id,
        "status": "ready",
        "food_point_id": "fp-1",
        "pickup": {"lat": 55.76, "lon": 37.62, "address": "Arbat 2"},
        "delivery": {"address": "Tverskaya 1", "lat": 55.76, "lon": 37.61},
        "items": located.items,
        "total": 34900,
        "distance_km": round(great_circle_km(MOSCOW, Position(55.76, 37.62)), 3),
    }
    plain = public_offer(rank_offers([delivery(2)], None)[0], with_distance=False)
    assert plain["pickup"] == {"lat": None, "lon": None}
    assert "distance_km" not in plain


def test_missing_pickups_are_the_food_points_of_offers_without_one() -> None:
    deliveries = [
        delivery(1, food_point_id="a"),
        delivery(2, food_point_id="b", pickup=Pickup(1, 2)),
        delivery(3, food_point_id=None),
        delivery(4, food_point_id="c", status=DeliveryStatus.IN_DELIVERY, courier="x"),
        delivery(5, food_point_id="a"),
    ]
    assert missing_pickups(deliveries) == {"a"}


def test_a_food_point_document_gives_a_pickup() -> None:
    body = {"food_point_id": "fp", "name": "N", "address": "Arbat 2", "lat": 55.7, "lon": 37.6}
    assert Pickup.from_food_point(body) == Pickup(55.7, 37.6, "Arbat 2")
    assert Pickup.from_food_point({"lat": "55.7", "lon": 37}) == Pickup(55.7, 37.0, None)
    bad_documents: list[object] = [
        None,
        [],
        {"lat": 1},
        {"lat": None, "lon": 2},
        {"lat": 91, "lon": 0},
        {"lat": "x", "lon": 0},
    ]
    for bad in bad_documents:
        assert Pickup.from_food_point(bad) is None


# --- events ---------------------------------------------------------------------------------------

ORDER_ID = "7f6a3c1e-0000-4000-8000-000000000001"


def event(status: str, **order: Any) -> dict[str, Any]:
    snapshot: dict[str, Any] = {
        "order_id": ORDER_ID,
        "user_id": "7f6a3c1e-0000-4000-8000-0000000000aa",
        "username": "alice",
        "status": status,
        "items": [{"menu_item_id": "m1", "name": "BLT", "quantity": 2, "price": 100}],
        "total": 200,
        "delivery": {"address": "Tverskaya 1", "lat": 55.76, "lon": 37.61},
        "food_point_id": "fp-1",
        "courier": None,
        **order,
    }
    return {"status": status, "previous_status": None, "at": "2024-01-05T12:00:00Z", "order": snapshot}


@pytest.mark.parametrize("status", ["created", "paid", "payment_failed", "assigned", "cancelled"])
def test_statuses_before_ready_are_none_of_deliverys_business(status: str) -> None:
    assert DeliveryUpdate.from_event(3, event(status)) is None


def test_a_ready_event_offers_the_order() -> None:
    update = DeliveryUpdate.from_event(4, event("ready", courier="stale-courier"))
    assert update is not None
    assert update.order_id == uuid.UUID(ORDER_ID)
    assert update.status is DeliveryStatus.READY
    assert update.courier is None
    assert update.ready_at == datetime(2024, 1, 5, 12, 0, tzinfo=UTC)
    assert update.taken_at is None and update.completed_at is None
    assert (update.dropoff_address, update.dropoff_lat, update.dropoff_lon) == ("Tverskaya 1", 55.76, 37.61)
    assert update.total == 200 and update.food_point_id == "fp-1"


def test_in_delivery_and_completed_events_carry_the_courier() -> None:
    taken = DeliveryUpdate.from_event(5, event("in_delivery", courier="bob"))
    done = DeliveryUpdate.from_event(6, event("completed", courier="bob"))
    assert taken is not None and taken.courier == "bob" and taken.taken_at is not None
    assert done is not None and done.courier == "bob" and done.completed_at is not None


@pytest.mark.parametrize("version", [0, -1, True])
def test_a_bad_version_is_refused(version: Any) -> None:
    with pytest.raises(InvalidDeliveryEvent):
        DeliveryUpdate.from_event(version, event("ready"))


def test_a_bad_order_id_or_time_is_refused() -> None:
    with pytest.raises(InvalidDeliveryEvent):
        DeliveryUpdate.from_event(4, event("ready", order_id="nope"))
    bad_time = event("ready")
    bad_time["at"] = "yesterday"
    with pytest.raises(InvalidDeliveryEvent):
        DeliveryUpdate.from_event(4, bad_time)


def test_only_a_newer_version_supersedes() -> None:
    assert supersedes(None, 1)
    assert supersedes(4, 5)
    assert not supersedes(5, 5)
    assert not supersedes(6, 5)


# --- take and complete ----------------------------------------------------------------------------


def test_refused_takes_are_explained() -> None:
    assert refused_take(None, "bob") is TakeOutcome.NOT_FOUND
    assert refused_take(("in_delivery", "bob"), "bob") is TakeOutcome.ALREADY_MINE
    assert refused_take(("in_delivery", "eve"), "bob") is TakeOutcome.ALREADY_TAKEN
    assert refused_take(("completed", "bob"), "bob") is TakeOutcome.ALREADY_COMPLETED
    assert refused_take(("completed", "eve"), "bob") is TakeOutcome.ALREADY_COMPLETED
    assert refused_take(("ready", None), "bob") is TakeOutcome.RETRY


def test_unknown_orders_are_explained_by_what_orders_says() -> None:
    refusal = unknown_order_refusal(None)
    assert isinstance(refusal, OrderNotFound) and refusal.code == "order_not_found"
    for status in ("created", "paid", "assigned", "ready"):
        refusal = unknown_order_refusal(status)
        assert isinstance(refusal, NotReady) and refusal.code == "not_ready"
    assert "try again" in unknown_order_refusal("ready").message
    for status in ("in_delivery", "completed"):
        assert isinstance(unknown_order_refusal(status), AlreadyTaken)
    refusal = unknown_order_refusal("cancelled")
    assert isinstance(refusal, NotDeliverable) and refusal.code == "not_deliverable"
    assert refusal.message == "The order is cancelled: there is nothing to deliver."


def test_only_the_courier_who_took_it_may_complete() -> None:
    assert may_complete(None, "bob") is CompleteOutcome.NOT_FOUND
    assert may_complete(("ready", None), "bob") is CompleteOutcome.NOT_YOURS
    assert may_complete(("in_delivery", "eve"), "bob") is CompleteOutcome.NOT_YOURS
    assert may_complete(("in_delivery", "bob"), "bob") is CompleteOutcome.ALLOWED
    assert may_complete(("completed", "bob"), "bob") is CompleteOutcome.ALREADY_COMPLETED
    assert may_complete(("completed", "eve"), "bob") is CompleteOutcome.NOT_YOURS
