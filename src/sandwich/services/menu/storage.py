"""The menu_items table of the menu database."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import text

from sandwich.platform.sql import Connection
from sandwich.services.menu.domain import Ingredient, MenuItem

_COLUMNS = "id::text AS id, name, price, ingredients"


def _ingredients(raw: Any) -> tuple[Ingredient, ...]:
    # SQLAlchemy's asyncpg dialect decodes jsonb; a plain string would mean a driver without that codec.
    data = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    return tuple(Ingredient(str(entry["name"]), int(entry["quantity"])) for entry in data or [])


def _item(row: Any) -> MenuItem:
    return MenuItem(row.id, row.name, row.price, _ingredients(row.ingredients))


async def insert_item(conn: Connection, item: MenuItem) -> bool:
    """True when the item was added; False when an item of that name (in any letter case) exists."""
    result = await conn.execute(
        text(
            "INSERT INTO menu_items (id, name, price, ingredients) "
            "VALUES (:id, :name, :price, CAST(:ingredients AS jsonb)) ON CONFLICT DO NOTHING"
        ),
        {
            "id": uuid.UUID(item.id),
            "name": item.name,
            "price": item.price,
            "ingredients": orjson.dumps([i.public() for i in item.ingredients]).decode(),
        },
    )
    return bool(result.rowcount)


async def all_items(conn: Connection) -> list[MenuItem]:
    rows = (await conn.execute(text(f"SELECT {_COLUMNS} FROM menu_items ORDER BY name, id"))).all()
    return [_item(row) for row in rows]


async def items_by_ids(conn: Connection, ids: list[uuid.UUID]) -> list[MenuItem]:
    if not ids:
        return []
    rows = (
        await conn.execute(
            text(f"SELECT {_COLUMNS} FROM menu_items WHERE id = ANY(:ids) ORDER BY name, id"), {"ids": ids}
        )
    ).all()
    return [_item(row) for row in rows]


class PostgresMenuItems:
    """The menu items repository on one connection (the statements above)."""

    def __init__(self, conn: Connection):
        self.conn = conn

    async def add(self, item: MenuItem) -> bool:
        return await insert_item(self.conn, item)

    async def all(self) -> list[MenuItem]:
        return await all_items(self.conn)

    async def by_ids(self, ids: list[uuid.UUID]) -> list[MenuItem]:
        return await items_by_ids(self.conn, ids)
