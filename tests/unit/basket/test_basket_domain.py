"""Basket rules: quantities, setting a line, a paid order taken out of the basket, pricing."""

from __future__ import annotations

import pytest

from sandwich.services.basket.domain import (
    MAX_LINES,
    MAX_QUANTITY,
    BasketFull,
    InvalidQuantity,
    MenuEntry,
    canonical_id,
    changes,
    checked_quantity,
    empties_basket,
    priced_basket,
    set_quantity,
    subtract_order,
)

pytestmark = pytest.mark.unit

CLUB = "7f6a3c1e-0000-4000-8000-000000000001"
BLT = "7f6a3c1e-0000-4000-8000-000000000002"
TUNA = "7f6a3c1e-0000-4000-8000-000000000003"


@pytest.mark.parametrize("quantity", [0, 1, MAX_QUANTITY])
def test_quantities_from_zero_to_the_maximum_are_allowed(quantity: int) -> None:
    assert checked_quantity(quantity) == quantity


@pytest.mark.parametrize("quantity", [-1, MAX_QUANTITY + 1, True, False, 1.0, "2", None])
def test_other_quantities_are_refused(quantity: object) -> None:
    with pytest.raises(InvalidQuantity):
        checked_quantity(quantity)


def test_setting_a_quantity_replaces_it_and_zero_removes_the_line() -> None:
    basket = set_quantity({}, CLUB, 2)
    assert basket == {CLUB: 2}
    assert set_quantity(basket, CLUB, 5) == {CLUB: 5}
    assert set_quantity(basket, CLUB, 0) == {}
    assert set_quantity(basket, BLT, 0) == {CLUB: 2}  # removing what is not there is harmless
    assert basket == {CLUB: 2}  # the input is never changed


def test_setting_a_bad_quantity_is_refused() -> None:
    with pytest.raises(InvalidQuantity):
        set_quantity({}, CLUB, MAX_QUANTITY + 1)


def test_a_full_basket_takes_no_new_item_but_changes_existing_ones() -> None:
    full = {f"00000000-0000-4000-8000-{i:012d}": 1 for i in range(MAX_LINES)}
    some = next(iter(full))
    with pytest.raises(BasketFull):
        set_quantity(full, TUNA, 1)
    assert set_quantity(full, some, 3)[some] == 3
    assert len(set_quantity(full, some, 0)) == MAX_LINES - 1


def test_ids_are_canonical_uuids() -> None:
    assert canonical_id(CLUB.upper()) == CLUB
    assert canonical_id(" " + CLUB + " ") == CLUB
    assert canonical_id("not-a-uuid") is None
    assert canonical_id("") is None


def test_only_a_paid_order_from_the_basket_empties_it() -> None:
    assert empties_basket("paid", True)
    assert not empties_basket("paid", False)
    for status in ("created", "payment_failed", "assigned", "cancelled", "completed"):
        assert not empties_basket(status, True)


def test_a_paid_order_takes_its_quantities_out_of_the_basket() -> None:
    basket = {CLUB: 2, BLT: 3}
    assert subtract_order(basket, [(CLUB, 2), (BLT, 1)]) == {BLT: 2}
    assert basket == {CLUB: 2, BLT: 3}


def test_lines_added_after_ordering_stay() -> None:
    # Ordered 2 clubs; then added a tuna and 3 more clubs before the payment went through.
    basket = {CLUB: 5, TUNA: 1}
    assert subtract_order(basket, [(CLUB, 2)]) == {CLUB: 3, TUNA: 1}


def test_a_line_lowered_or_removed_after_ordering_is_not_driven_below_zero() -> None:
    assert subtract_order({CLUB: 1}, [(CLUB, 4), (BLT, 2)]) == {}
    assert subtract_order({}, [(CLUB, 1)]) == {}


def test_repeated_and_nonpositive_order_lines() -> None:
    assert subtract_order({CLUB: 5}, [(CLUB, 2), (CLUB, 2)]) == {CLUB: 1}
    assert subtract_order({CLUB: 5}, [(CLUB, 0), (CLUB, -3)]) == {CLUB: 5}


def test_changes_name_what_to_write_and_what_to_delete() -> None:
    diff = changes({CLUB: 2, BLT: 3, TUNA: 1}, {BLT: 1, TUNA: 1})
    assert diff.upserts == {BLT: 1}
    assert diff.removals == [CLUB]
    assert changes({CLUB: 1}, {CLUB: 1}).empty


def test_a_basket_is_priced_from_the_menu() -> None:
    menu = {CLUB: MenuEntry("Club", 45_000), BLT: MenuEntry("BLT", 39_900)}
    priced = priced_basket([(CLUB, 2), (BLT, 1)], menu)
    assert priced == {
        "items": [
            {"menu_item_id": CLUB, "quantity": 2, "name": "Club", "price": 45_000},
            {"menu_item_id": BLT, "quantity": 1, "name": "BLT", "price": 39_900},
        ],
        "total": 129_900,
        "prices_unavailable": False,
    }


def test_an_item_gone_from_the_menu_shows_without_price_and_does_not_count() -> None:
    priced = priced_basket([(CLUB, 2), (TUNA, 1)], {CLUB: MenuEntry("Club", 45_000)})
    assert priced["total"] == 90_000
    assert priced["items"][1] == {"menu_item_id": TUNA, "quantity": 1, "name": None, "price": None}


def test_without_the_menu_the_basket_shows_quantities_and_no_total() -> None:
    priced = priced_basket([(CLUB, 2)], None)
    assert priced == {
        "items": [{"menu_item_id": CLUB, "quantity": 2, "name": None, "price": None}],
        "total": None,
        "prices_unavailable": True,
    }
    assert priced_basket([], {}) == {"items": [], "total": 0, "prices_unavailable": False}
