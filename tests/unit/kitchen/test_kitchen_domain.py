"""Kitchen rules: distances, what an order needs, and which food point takes it (ADR 000 step 4)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from sandwich.platform.http import Response, ServiceUnavailable
from sandwich.services.kitchen.domain import (
    EARTH_RADIUS_KM,
    Assignment,
    AssignmentState,
    PointState,
    ReadyVerdict,
    UnknownMenuItem,
    compute_needs,
    haversine_km,
    nearest_candidate,
    rank_candidates,
    ready_verdict,
)
from sandwich.services.kitchen.ports import MenuRecipes, RecipesUnavailable

pytestmark = pytest.mark.unit

MOSCOW = (55.7558, 37.6173)
SPB = (59.9343, 30.3351)
HOME = (55.75, 37.62)


def point(pid: str, lat: float, lon: float, **changes: Any) -> PointState:
    values: dict[str, Any] = {
        "food_point_id": pid,
        "lat": lat,
        "lon": lon,
        "capacity": 5,
        "active_orders": 0,
        "accepts_delivery": True,
        "stock": {"bread": 10, "ham": 10},
    }
    values.update(changes)
    return PointState(**values)


# --- haversine -------------------------------------------------------------------------------------


def test_distance_to_itself_is_zero() -> None:
    assert haversine_km(*MOSCOW, *MOSCOW) == 0.0


def test_moscow_to_saint_petersburg_is_about_634_km() -> None:
    assert haversine_km(*MOSCOW, *SPB) == pytest.approx(634, abs=3)


def test_distance_is_symmetric() -> None:
    assert haversine_km(*MOSCOW, *SPB) == pytest.approx(haversine_km(*SPB, *MOSCOW))


def test_one_degree_of_longitude_on_the_equator() -> None:
    assert haversine_km(0, 0, 0, 1) == pytest.approx(2 * math.pi * EARTH_RADIUS_KM / 360)


def test_antipodes_are_half_the_circumference_apart() -> None:
    assert haversine_km(0, 0, 0, 180) == pytest.approx(math.pi * EARTH_RADIUS_KM)
    assert haversine_km(90, 0, -90, 0) == pytest.approx(math.pi * EARTH_RADIUS_KM)


def test_the_date_line_is_not_a_wall() -> None:
    # 179.9E and 179.9W are 0.2 degrees apart, not 359.8.
    assert haversine_km(0, 179.9, 0, -179.9) == pytest.approx(2 * math.pi * EARTH_RADIUS_KM * 0.2 / 360)


# --- needs -----------------------------------------------------------------------------------------


def test_needs_are_recipe_quantity_times_order_quantity() -> None:
    recipes = {"club": [("bread", 2), ("ham", 1)]}
    assert compute_needs([("club", 3)], recipes) == {"bread": 6, "ham": 3}


def test_needs_of_several_lines_are_summed_per_ingredient() -> None:
    recipes = {"club": [("bread", 2), ("ham", 1)], "veggie": [("bread", 2), ("tomato", 3)]}
    assert compute_needs([("club", 1), ("veggie", 2)], recipes) == {"bread": 6, "ham": 1, "tomato": 6}


def test_ingredient_names_are_compared_without_extra_spaces() -> None:
    recipes = {"a": [("rye  bread", 1)], "b": [(" rye bread ", 2)]}
    assert compute_needs([("a", 1), ("b", 1)], recipes) == {"rye bread": 3}


def test_an_item_without_ingredients_needs_nothing() -> None:
    assert compute_needs([("water", 4)], {"water": []}) == {}


def test_an_unknown_menu_item_cannot_be_cooked() -> None:
    with pytest.raises(UnknownMenuItem) as caught:
        compute_needs([("club", 1), ("ghost", 1)], {"club": [("bread", 1)]})
    assert caught.value.menu_item_id == "ghost"


# --- choosing the food point -----------------------------------------------------------------------

NEEDS = {"bread": 2, "ham": 1}


def test_the_nearest_eligible_point_wins() -> None:
    near = point("near", 55.751, 37.621)
    far = point("far", *SPB)
    assert nearest_candidate([far, near], NEEDS, *HOME) == near
    assert [p.food_point_id for p in rank_candidates([far, near], NEEDS, *HOME)] == ["near", "far"]


def test_a_nearer_point_without_capacity_is_skipped() -> None:
    full = point("full", 55.751, 37.621, capacity=3, active_orders=3)
    far = point("far", *SPB)
    assert nearest_candidate([full, far], NEEDS, *HOME) == far


def test_a_point_with_zero_capacity_never_takes_orders() -> None:
    assert nearest_candidate([point("zero", *HOME, capacity=0)], NEEDS, *HOME) is None


def test_a_point_over_capacity_after_the_admin_lowered_it_is_skipped() -> None:
    assert nearest_candidate([point("over", *HOME, capacity=2, active_orders=4)], NEEDS, *HOME) is None


def test_a_nearer_point_missing_an_ingredient_is_skipped() -> None:
    no_ham = point("no-ham", 55.751, 37.621, stock={"bread": 100})
    far = point("far", *SPB)
    assert nearest_candidate([no_ham, far], NEEDS, *HOME) == far


def test_a_nearer_point_with_too_little_of_an_ingredient_is_skipped() -> None:
    short = point("short", 55.751, 37.621, stock={"bread": 1, "ham": 10})
    exact = point("exact", *SPB, stock={"bread": 2, "ham": 1})
    assert nearest_candidate([short, exact], NEEDS, *HOME) == exact


def test_a_nearer_point_not_accepting_delivery_is_skipped() -> None:
    dine_in = point("dine-in", 55.751, 37.621, accepts_delivery=False)
    far = point("far", *SPB)
    assert nearest_candidate([dine_in, far], NEEDS, *HOME) == far


def test_no_point_can_take_the_order() -> None:
    points = [
        point("full", *HOME, active_orders=5),
        point("empty", *HOME, stock={}),
        point("closed", *HOME, accepts_delivery=False),
    ]
    assert rank_candidates(points, NEEDS, *HOME) == []


def test_an_order_needing_nothing_only_needs_a_free_slot() -> None:
    assert nearest_candidate([point("bare", *HOME, stock={})], {}, *HOME) is not None


def test_equally_near_points_are_ranked_by_id() -> None:
    b, a = point("b", *MOSCOW), point("a", *MOSCOW)
    assert [p.food_point_id for p in rank_candidates([b, a], NEEDS, *HOME)] == ["a", "b"]


# --- a cook's "ready" ------------------------------------------------------------------------------


def assignment(state: AssignmentState, food_point_id: str = "fp-1") -> Assignment:
    now = datetime(2024, 1, 5, tzinfo=UTC)
    return Assignment("o-1", food_point_id, "u-1", "alice", [], {}, {}, state, now, now)


def test_ready_needs_an_assignment() -> None:
    assert ready_verdict(None, "fp-1") is ReadyVerdict.NOT_ASSIGNED


def test_ready_for_another_food_point_is_refused() -> None:
    assert ready_verdict(assignment(AssignmentState.CONFIRMED, "fp-2"), "fp-1") is ReadyVerdict.NOT_YOURS


@pytest.mark.parametrize("state", [AssignmentState.RESERVED, AssignmentState.CONFIRMED])
def test_ready_of_a_held_order_asks_orders(state: AssignmentState) -> None:
    assert ready_verdict(assignment(state), "fp-1") is ReadyVerdict.ASK_ORDERS


@pytest.mark.parametrize("state", [AssignmentState.READY, AssignmentState.RELEASED])
def test_ready_twice_or_after_release_is_illegal(state: AssignmentState) -> None:
    assert ready_verdict(assignment(state), "fp-1") is ReadyVerdict.NOT_ASSIGNED


# --- the recipe cache ------------------------------------------------------------------------------

CLUB = "00000000-0000-4000-8000-000000000001"
SOUP = "00000000-0000-4000-8000-000000000002"


class FakeMenu:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.down = False

    async def request(self, service: str, method: str, path: str, **kwargs: Any) -> Response:
        if self.down:
            raise ServiceUnavailable(service, "down")
        ids = kwargs["params"]["ids"].split(",")
        self.calls.append(kwargs["params"]["ids"])
        known = {CLUB: [{"name": "bread", "quantity": 2}], SOUP: []}
        return Response(200, {"items": [{"id": i, "ingredients": known[i]} for i in ids if i in known]})


async def test_recipes_are_cached_and_unknown_items_left_out() -> None:
    menu = FakeMenu()
    book = MenuRecipes(menu, ttl_seconds=60)  # type: ignore[arg-type]
    first = await book.recipes([CLUB, SOUP, "not-a-uuid"])
    assert first == {CLUB: (("bread", 2),), SOUP: ()}
    menu.down = True
    assert await book.recipes([CLUB]) == {CLUB: (("bread", 2),)}
    assert menu.calls == [f"{CLUB},{SOUP}"]


async def test_recipes_unavailable_when_menu_is_down() -> None:
    menu = FakeMenu()
    menu.down = True
    with pytest.raises(RecipesUnavailable):
        await MenuRecipes(menu, ttl_seconds=60).recipes([CLUB])  # type: ignore[arg-type]
