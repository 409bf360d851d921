"""The basket_lines and processed_orders tables of the basket database.

Every change of a basket happens under a per-user advisory lock taken in the caller's transaction:
read the lines, let the domain compute the new basket, write the difference. So a customer's PUTs and
the paid-order consumer never interleave on one basket.
"""

from __future__ import annotations

import uuid

from sqlalchemy import text

from sandwich.platform.sql import Connection
from sandwich.services.basket.domain import BasketChanges

_LOCK_BASKET = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
_LINES = text(
    "SELECT menu_item_id::text AS menu_item_id, quantity FROM basket_lines WHERE user_id = :user_id "
    "ORDER BY created_at, menu_item_id"
)
_UPSERT_LINE = text(
    "INSERT INTO basket_lines (user_id, menu_item_id, quantity) VALUES (:user_id, :menu_item_id, :quantity) "
    "ON CONFLICT (user_id, menu_item_id) DO UPDATE SET quantity = EXCLUDED.quantity, updated_at = now()"
)
_DELETE_LINE = text("DELETE FROM basket_lines WHERE user_id = :user_id AND menu_item_id = :menu_item_id")
_CLAIM_ORDER = text(
    "INSERT INTO processed_orders (order_id, user_id) VALUES (:order_id, :user_id) ON CONFLICT DO NOTHING"
)


class PostgresBaskets:
    """The customers' baskets (basket_lines) on the unit of work's connection."""

    def __init__(self, conn: Connection):
        self.conn = conn

    async def lock(self, user_id: uuid.UUID) -> None:
        """Serialise changes of one user's basket until the caller's transaction ends."""
        await self.conn.execute(_LOCK_BASKET, {"key": f"basket:{user_id}"})

    async def lines_of(self, user_id: uuid.UUID) -> list[tuple[str, int]]:
        """(menu item id, quantity) of the user's basket, in the order the items were first added."""
        rows = (await self.conn.execute(_LINES, {"user_id": user_id})).all()
        return [(row.menu_item_id, row.quantity) for row in rows]

    async def write_changes(self, user_id: uuid.UUID, basket_changes: BasketChanges) -> None:
        for menu_item_id, quantity in basket_changes.upserts.items():
            await self.conn.execute(
                _UPSERT_LINE,
                {"user_id": user_id, "menu_item_id": uuid.UUID(menu_item_id), "quantity": quantity},
            )
        for menu_item_id in basket_changes.removals:
            await self.conn.execute(
                _DELETE_LINE, {"user_id": user_id, "menu_item_id": uuid.UUID(menu_item_id)}
            )


class PostgresProcessedOrders:
    """The paid orders already taken out of their baskets (processed_orders)."""

    def __init__(self, conn: Connection):
        self.conn = conn

    async def claim(self, order_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """True the first time this order's payment is applied to the basket (in the caller's
        transaction)."""
        result = await self.conn.execute(_CLAIM_ORDER, {"order_id": order_id, "user_id": user_id})
        return bool(result.rowcount)
