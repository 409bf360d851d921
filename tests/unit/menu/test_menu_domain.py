"""Menu rules: valid items, merged ingredients, and the menu's order."""

from __future__ import annotations

import pytest

from sandwich.services.menu.domain import (
    MAX_INGREDIENTS,
    MAX_PRICE,
    Ingredient,
    InvalidMenuItem,
    MenuItem,
    new_menu_item,
    sorted_menu,
)

pytestmark = pytest.mark.unit

ID = "00000000-0000-0000-0000-000000000001"


def test_a_valid_item_keeps_its_fields_and_shows_the_contract_shape() -> None:
    item = new_menu_item(ID, "Club sandwich", 45_000, [("bread", 2), ("ham", 1)])
    assert item.public() == {
        "id": ID,
        "name": "Club sandwich",
        "price": 45_000,
        "ingredients": [{"name": "bread", "quantity": 2}, {"name": "ham", "quantity": 1}],
    }


def test_names_are_trimmed_and_inner_whitespace_collapsed() -> None:
    item = new_menu_item(ID, "  Club   sandwich ", 100, [(" cheddar  cheese ", 1)])
    assert item.name == "Club sandwich"
    assert item.ingredients == (Ingredient("cheddar cheese", 1),)


def test_an_ingredient_listed_twice_is_merged() -> None:
    item = new_menu_item(ID, "Double", 100, [("cheese", 1), ("bread", 2), ("cheese", 2)])
    assert item.ingredients == (Ingredient("cheese", 3), Ingredient("bread", 2))


def test_an_item_may_have_no_ingredients() -> None:
    assert new_menu_item(ID, "Water", 5_000, []).ingredients == ()


@pytest.mark.parametrize("price", [0, -1, MAX_PRICE + 1, True])
def test_price_must_be_positive_kopecks_within_the_limit(price: int) -> None:
    with pytest.raises(InvalidMenuItem):
        new_menu_item(ID, "Club", price, [])


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_name_must_have_1_to_100_characters(name: str) -> None:
    with pytest.raises(InvalidMenuItem):
        new_menu_item(ID, name, 100, [])


@pytest.mark.parametrize("ingredient", [("bread", 0), ("bread", -2), ("", 1), ("x" * 65, 1)])
def test_ingredients_need_a_name_and_a_positive_quantity(ingredient: tuple[str, int]) -> None:
    with pytest.raises(InvalidMenuItem):
        new_menu_item(ID, "Club", 100, [ingredient])


def test_at_most_thirty_ingredients() -> None:
    many = [(f"i{n}", 1) for n in range(MAX_INGREDIENTS + 1)]
    with pytest.raises(InvalidMenuItem):
        new_menu_item(ID, "Club", 100, many)
    assert len(new_menu_item(ID, "Club", 100, many[:MAX_INGREDIENTS]).ingredients) == MAX_INGREDIENTS


def test_the_menu_is_sorted_by_name_ignoring_case() -> None:
    items = [MenuItem(str(n), name, 100, ()) for n, name in enumerate(["club", "BLT", "Avocado", "bagel"])]
    assert [item.name for item in sorted_menu(items)] == ["Avocado", "bagel", "BLT", "club"]
