"""basket's use cases: read the basket priced, set an item's quantity, give orders the lines, and
take a paid order's lines out of its basket. Each takes its command and a unit of work (and the menu
where prices are needed), and returns the basket as the domain sees it; the routes and the consumer
choose the answers.

Every change of a basket happens under a per-user lock taken in the unit's transaction: read the
lines, let the domain compute the new basket, write the difference. So a customer's changes and the
paid-order consumer never interleave on one basket. Reads need no transaction: one statement each.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from sandwich.services.basket.domain import (
    MenuEntry,
    changes,
    priced_basket,
    set_quantity,
    subtract_order,
)
from sandwich.services.basket.ports import Menu, MenuUnavailable
from sandwich.services.basket.unit_of_work import BasketUnitOfWork

log = structlog.get_logger("basket")

Outcome = Literal["applied", "ignored", "already_applied"]
Lines = list[tuple[str, int]]


class UnknownMenuItem(Exception):
    """The item to add is not on the menu (an id that is not a UUID is not on it either)."""


@dataclass(frozen=True)
class SetQuantity:
    """Set how many of a menu item (a canonical id) the user's basket holds; 0 removes it."""

    user_id: uuid.UUID
    menu_item_id: str
    quantity: int


@dataclass(frozen=True)
class PaidOrder:
    """An order placed from the basket, paid: its lines (canonical ids) leave the basket, once."""

    order_id: uuid.UUID
    user_id: uuid.UUID
    lines: Lines


async def priced(menu: Menu, lines: Lines, known: dict[str, MenuEntry] | None = None) -> dict[str, Any]:
    """The basket priced from the menu, asking it only for items not in `known`; without prices if
    it is away."""
    entries = dict(known or {})
    missing = [item for item, _ in lines if item not in entries]
    if missing:
        try:
            entries.update(await menu.lookup(missing))
        except MenuUnavailable as exc:
            log.warning("menu_unavailable_for_basket", error=str(exc))
            return priced_basket(lines, None)
    return priced_basket(lines, entries)


async def basket_lines(user_id: uuid.UUID, uow: BasketUnitOfWork) -> Lines:
    """(menu item id, quantity) of the user's basket, in the order the items were first added."""
    async with uow.statements() as reading:
        return await reading.baskets.lines_of(user_id)


async def read_basket(user_id: uuid.UUID, uow: BasketUnitOfWork, menu: Menu) -> dict[str, Any]:
    """The user's basket with names, prices and total (without prices when the menu is away)."""
    return await priced(menu, await basket_lines(user_id, uow))


async def set_item_quantity(command: SetQuantity, uow: BasketUnitOfWork, menu: Menu) -> dict[str, Any]:
    """The basket, priced, after setting one item's quantity.

    Adding needs the item to be on the menu (UnknownMenuItem; MenuUnavailable when the menu cannot
    be asked); removing never asks the menu, so an item that left the menu can still be taken out.
    A basket already holding MAX_LINES items refuses another (BasketFull) and nothing changes.
    """
    known: dict[str, MenuEntry] | None = None
    if command.quantity > 0:
        current = await basket_lines(command.user_id, uow)
        # One lookup checks the item and prices the rest of the basket for the answer.
        known = await menu.lookup([command.menu_item_id, *(item for item, _ in current)])
        if command.menu_item_id not in known:
            raise UnknownMenuItem(command.menu_item_id)
    async with uow:
        await uow.baskets.lock(command.user_id)
        before = dict(await uow.baskets.lines_of(command.user_id))
        after = set_quantity(before, command.menu_item_id, command.quantity)
        await uow.baskets.write_changes(command.user_id, changes(before, after))
        lines = await uow.baskets.lines_of(command.user_id)
        await uow.commit()
    return await priced(menu, lines, known)


async def take_out_paid_order(order: PaidOrder, uow: BasketUnitOfWork) -> Outcome:
    """Take a paid order's lines out of its basket, once per order: the order id is claimed in the
    same transaction, so a second `paid` of the order (re-published, or pushed and consumed too)
    changes nothing. Lines added after ordering stay, and so does what was added beyond the order."""
    async with uow:
        if not await uow.processed_orders.claim(order.order_id, order.user_id):
            return "already_applied"
        await uow.baskets.lock(order.user_id)
        before = dict(await uow.baskets.lines_of(order.user_id))
        after = subtract_order(before, order.lines)
        await uow.baskets.write_changes(order.user_id, changes(before, after))
        await uow.commit()
    return "applied"
