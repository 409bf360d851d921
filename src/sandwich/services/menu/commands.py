"""What menu does: show the menu, add an item (admins), and look items up by id for orders, which
prices every order from here. Use cases of (command, unit of work); api.py maps their errors."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sandwich.services.menu.domain import MAX_LOOKUP_IDS, MenuItem, new_menu_item, sorted_menu
from sandwich.services.menu.unit_of_work import MenuUnitOfWork


class MenuItemExists(Exception):
    """An item of this name, letter case aside, is on the menu already."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class TooManyIds(Exception):
    pass


@dataclass(frozen=True)
class NewItem:
    name: str
    price: int
    ingredients: list[tuple[str, int]]


async def menu(uow: MenuUnitOfWork) -> list[MenuItem]:
    """The whole menu, in the order it is shown."""
    async with uow.statements() as step:
        items = await step.items.all()
    return sorted_menu(items)


async def add_item(command: NewItem, uow: MenuUnitOfWork) -> MenuItem:
    """Add an item; names are unique regardless of letter case, so a menu never lists one dish twice.
    InvalidMenuItem (a menu rule broken), MenuItemExists."""
    item = new_menu_item(str(uuid.uuid4()), command.name, command.price, command.ingredients)
    async with uow:
        if not await uow.items.add(item):
            raise MenuItemExists(item.name)
        await uow.commit()
    return item


async def items_by_ids(ids: list[uuid.UUID], uow: MenuUnitOfWork) -> list[MenuItem]:
    """The items of `ids` (each asked once); unknown ids are simply absent. TooManyIds past
    MAX_LOOKUP_IDS."""
    if len(ids) > MAX_LOOKUP_IDS:
        raise TooManyIds(len(ids))
    async with uow.statements() as step:
        return await step.items.by_ids(ids)
