"""The in-process cache of pickup points: one kitchen call per food point per TTL, and a kitchen that
cannot be reached is asked again next time instead of being remembered as unknown."""

from __future__ import annotations

from typing import Any

import pytest

from sandwich.platform.http import Response, ServiceUnavailable
from sandwich.services.delivery.domain import Pickup
from sandwich.services.delivery.ports import FoodPoints

pytestmark = pytest.mark.unit


class FakeKitchen:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.answer: Response | None = Response(
            200, {"food_point_id": "fp", "lat": 55.7, "lon": 37.6, "address": "A"}
        )

    async def request(self, service: str, method: str, path: str, **_: Any) -> Response:
        assert (service, method) == ("kitchen", "GET")
        self.calls.append(path)
        if self.answer is None:
            raise ServiceUnavailable("kitchen", "connection refused")
        return self.answer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def food_points(kitchen: FakeKitchen, clock: Clock) -> FoodPoints:
    return FoodPoints(kitchen, ttl_seconds=60, unknown_ttl_seconds=10, clock=clock)  # type: ignore[arg-type]


async def test_a_pickup_is_asked_once_per_ttl() -> None:
    kitchen, clock = FakeKitchen(), Clock()
    points = food_points(kitchen, clock)
    assert await points.pickup("fp") == Pickup(55.7, 37.6, "A")
    clock.now += 59
    assert await points.pickup("fp") == Pickup(55.7, 37.6, "A")
    assert kitchen.calls == ["/internal/v1/food-points/fp"]
    clock.now += 2
    await points.pickup("fp")
    assert len(kitchen.calls) == 2


async def test_an_unreachable_kitchen_is_asked_again_next_time() -> None:
    kitchen, clock = FakeKitchen(), Clock()
    kitchen.answer = None
    points = food_points(kitchen, clock)
    assert await points.pickup("fp") is None
    assert points.cached("fp") == (False, None)
    kitchen.answer = Response(200, {"lat": 1, "lon": 2})
    assert await points.pickup("fp") == Pickup(1.0, 2.0)
    assert len(kitchen.calls) == 2


async def test_an_unknown_food_point_is_remembered_briefly() -> None:
    kitchen, clock = FakeKitchen(), Clock()
    kitchen.answer = Response(404, {"error": {"code": "not_found", "message": "no"}})
    points = food_points(kitchen, clock)
    assert await points.pickup("x/y") is None
    assert await points.pickup("x/y") is None
    assert kitchen.calls == ["/internal/v1/food-points/x%2Fy"]
    clock.now += 11
    await points.pickup("x/y")
    assert len(kitchen.calls) == 2


async def test_a_malformed_food_point_is_not_cached() -> None:
    kitchen, clock = FakeKitchen(), Clock()
    kitchen.answer = Response(200, {"lat": None})
    points = food_points(kitchen, clock)
    assert await points.pickup("fp") is None
    assert points.cached("fp") == (False, None)
