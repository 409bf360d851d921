"""Basket rules as plain Python: how many of an item a basket may hold, what setting a quantity and
paying for an order placed from the basket do to it, and how a basket is priced from the menu.

A basket is a mapping menu item id -> quantity (always > 0: a line at 0 does not exist). Ids are
canonical UUID strings, so the same item never shows up as two lines.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_QUANTITY = 50  # per line, the same bound orders puts on an order line
MAX_LINES = 100  # distinct items in one basket (keeps the menu lookup of a basket one small call)

Basket = Mapping[str, int]


class InvalidQuantity(ValueError):
    """A quantity that is not a whole number in 0..MAX_QUANTITY."""


class BasketFull(Exception):
    """Adding one more distinct item would pass MAX_LINES."""


def canonical_id(raw: str) -> str | None:
    """The canonical form of a menu item (or user/order) id, or None when it is not a UUID."""
    try:
        return str(uuid.UUID(str(raw).strip()))
    except (ValueError, AttributeError):
        return None


def checked_quantity(value: object) -> int:
    """The quantity a client asked for, if allowed: an int (not a bool) in 0..MAX_QUANTITY; 0 removes."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidQuantity(f"quantity must be a whole number, not {value!r}")
    if not 0 <= value <= MAX_QUANTITY:
        raise InvalidQuantity(f"quantity must be between 0 and {MAX_QUANTITY}, not {value}")
    return value


def set_quantity(basket: Basket, menu_item_id: str, quantity: int) -> dict[str, int]:
    """The basket after the customer set one item's quantity (absolute, not added); 0 removes the line."""
    quantity = checked_quantity(quantity)
    after = dict(basket)
    if quantity == 0:
        after.pop(menu_item_id, None)
        return after
    if menu_item_id not in after and len(after) >= MAX_LINES:
        raise BasketFull(f"a basket holds at most {MAX_LINES} different items")
    after[menu_item_id] = quantity
    return after


def empties_basket(status: str, from_basket: bool) -> bool:
    """An order placed from the basket takes its lines out of the basket when (and only when) it is paid."""
    return from_basket and status == "paid"


def subtract_order(basket: Basket, ordered: Iterable[tuple[str, int]]) -> dict[str, int]:
    """The basket after a paid order placed from it: each ordered quantity is taken out of its line,
    and a line that reaches 0 or less is gone. Lines the order did not contain (added after ordering)
    stay, and so does whatever was added to a line beyond what was ordered."""
    after = dict(basket)
    for menu_item_id, quantity in ordered:
        if menu_item_id not in after or quantity <= 0:
            continue
        left = after[menu_item_id] - quantity
        if left > 0:
            after[menu_item_id] = left
        else:
            del after[menu_item_id]
    return after


@dataclass(frozen=True)
class BasketChanges:
    """What storage has to write to turn one basket into another."""

    upserts: dict[str, int]
    removals: list[str]

    @property
    def empty(self) -> bool:
        return not self.upserts and not self.removals


def changes(before: Basket, after: Basket) -> BasketChanges:
    upserts = {item: quantity for item, quantity in after.items() if before.get(item) != quantity}
    removals = sorted(item for item in before if item not in after)
    return BasketChanges(upserts, removals)


@dataclass(frozen=True)
class MenuEntry:
    name: str
    price: int  # minor units


def priced_basket(lines: Sequence[tuple[str, int]], menu: Mapping[str, MenuEntry] | None) -> dict[str, Any]:
    """The basket as the customer sees it, priced from the menu.

    `menu` is None when the menu could not be asked: the lines still show with their quantities, but
    name, price and total are null and `prices_unavailable` is true. An item the menu no longer knows
    shows with a null name and price and does not count in the total.
    """
    if menu is None:
        items = [
            {"menu_item_id": item, "quantity": quantity, "name": None, "price": None}
            for item, quantity in lines
        ]
        return {"items": items, "total": None, "prices_unavailable": True}
    items = []
    total = 0
    for item, quantity in lines:
        entry = menu.get(item)
        items.append(
            {
                "menu_item_id": item,
                "quantity": quantity,
                "name": entry.name if entry else None,
                "price": entry.price if entry else None,
            }
        )
        if entry is not None:
            total += entry.price * quantity
    return {"items": items, "total": total, "prices_unavailable": False}
