"""Menu rules: what a menu item is, and which items are acceptable.

The kitchen cooks from the recipe and orders are priced from the menu, so an item must have a
positive price in kopecks and whole positive ingredient quantities; everything else about an item
is free text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_NAME_LENGTH = 100
MAX_PRICE = 10_000_000
MAX_INGREDIENTS = 30
MAX_INGREDIENT_NAME_LENGTH = 64
MAX_LOOKUP_IDS = 500


class InvalidMenuItem(ValueError):
    """The item breaks a menu rule; the message says which."""


@dataclass(frozen=True)
class Ingredient:
    name: str
    quantity: int

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "quantity": self.quantity}


@dataclass(frozen=True)
class MenuItem:
    id: str
    name: str
    price: int
    ingredients: tuple[Ingredient, ...]

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "price": self.price,
            "ingredients": [ingredient.public() for ingredient in self.ingredients],
        }


def clean_name(name: str) -> str:
    """Names are compared and shown without surrounding or repeated whitespace."""
    return " ".join(name.split())


def new_menu_item(item_id: str, name: str, price: int, ingredients: list[tuple[str, int]]) -> MenuItem:
    """A valid item, or InvalidMenuItem.

    An ingredient listed twice is merged into one line with the quantities added, because the kitchen
    checks stock per ingredient name and two lines for one name would be checked separately.
    """
    name = clean_name(name)
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidMenuItem(f"name must be 1..{MAX_NAME_LENGTH} characters")
    if isinstance(price, bool) or not 1 <= price <= MAX_PRICE:
        raise InvalidMenuItem(f"price must be 1..{MAX_PRICE} kopecks")
    if len(ingredients) > MAX_INGREDIENTS:
        raise InvalidMenuItem(f"at most {MAX_INGREDIENTS} ingredients")
    merged: dict[str, int] = {}
    for raw_name, quantity in ingredients:
        ingredient = clean_name(raw_name)
        if not 1 <= len(ingredient) <= MAX_INGREDIENT_NAME_LENGTH:
            raise InvalidMenuItem(f"ingredient names must be 1..{MAX_INGREDIENT_NAME_LENGTH} characters")
        if isinstance(quantity, bool) or quantity < 1:
            raise InvalidMenuItem("ingredient quantities must be positive whole numbers")
        merged[ingredient] = merged.get(ingredient, 0) + quantity
    return MenuItem(
        item_id, name, price, tuple(Ingredient(name, quantity) for name, quantity in merged.items())
    )


def sorted_menu(items: list[MenuItem]) -> list[MenuItem]:
    """The menu is shown alphabetically, case-insensitively, so a reader finds an item by its name."""
    return sorted(items, key=lambda item: (item.name.casefold(), item.name, item.id))
