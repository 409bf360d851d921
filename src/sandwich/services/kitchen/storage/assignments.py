"""Orders given to a food point (table assignments): recording a reservation, its confirmation by
orders, and giving its slot back exactly once (released: with the ingredients; ready: they stay used)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import text

from sandwich.platform.inbox import CLAIMED, Effect
from sandwich.platform.sql import Connection
from sandwich.services.kitchen.domain import HOLDING_STATES, Assignment, AssignmentState, PendingOrder
from sandwich.services.kitchen.storage.rows import as_uuid, bump_supply, dumps, json_value

_ASSIGNMENT_COLUMNS = (
    "order_id::text AS order_id, food_point_id::text AS food_point_id, user_id::text AS user_id, username, "
    "items, needs, delivery, state, paid_at, assigned_at"
)

_CONFIRM = "UPDATE assignments SET state = 'confirmed', confirmed_at = now() WHERE order_id = :id AND state = 'reserved'"


def _assignment(row: Any) -> Assignment:
    return Assignment(
        order_id=row.order_id,
        food_point_id=row.food_point_id,
        user_id=row.user_id,
        username=row.username,
        items=list(json_value(row.items)),
        needs={str(k): int(v) for k, v in dict(json_value(row.needs)).items()},
        delivery=dict(json_value(row.delivery)),
        state=AssignmentState(row.state),
        paid_at=row.paid_at,
        assigned_at=row.assigned_at,
    )


def _confirm_params(order_id: str, food_point_id: str | None) -> tuple[str, dict[str, Any]] | None:
    """The condition on the food point (when given) and the parameters; None for a malformed id."""
    params: dict[str, Any] = {"id": uuid.UUID(order_id)}
    if food_point_id is None:
        return "", params
    point = as_uuid(food_point_id)
    if point is None:
        return None
    params["food_point_id"] = point
    return " AND food_point_id = :food_point_id", params


def confirm_effect(order_id: str, food_point_id: str) -> Effect | None:
    """PostgresAssignments.confirm as the consumer's Effect (with its inbox claim); None for a
    malformed food point id."""
    found = _confirm_params(order_id, food_point_id)
    if found is None:
        return None
    condition, params = found
    return Effect(f"confirmed AS ({_CONFIRM}{condition} AND {CLAIMED})", params)


_FREE_SLOT = text("UPDATE food_points SET active_orders = active_orders - 1 WHERE id = :id")


class PostgresAssignments:
    """The assignments on one connection."""

    def __init__(self, conn: Connection):
        self.conn = conn

    async def record(self, order: PendingOrder, food_point_id: str, needs: Mapping[str, int]) -> None:
        """The order is reserved at the food point (its slot and ingredients taken by the caller)."""
        await self.conn.execute(
            text(
                "INSERT INTO assignments (order_id, food_point_id, user_id, username, items, needs, delivery, "
                "state, paid_at) VALUES (:order_id, :food_point_id, :user_id, :username, CAST(:items AS jsonb), "
                "CAST(:needs AS jsonb), CAST(:delivery AS jsonb), 'reserved', :paid_at)"
            ),
            {
                "order_id": uuid.UUID(order.order_id),
                "food_point_id": uuid.UUID(food_point_id),
                "user_id": uuid.UUID(order.user_id),
                "username": order.username,
                "items": dumps(order.items),
                "needs": dumps(dict(needs)),
                "delivery": dumps(order.delivery),
                "paid_at": order.paid_at,
            },
        )

    async def get(self, order_id: uuid.UUID) -> Assignment | None:
        row = (
            await self.conn.execute(
                text(f"SELECT {_ASSIGNMENT_COLUMNS} FROM assignments WHERE order_id = :id"), {"id": order_id}
            )
        ).one_or_none()
        return _assignment(row) if row else None

    async def at(
        self, food_point_id: uuid.UUID, states: tuple[str, ...] = HOLDING_STATES
    ) -> list[Assignment]:
        """A food point's orders in the given states, oldest assignment first."""
        rows = (
            await self.conn.execute(
                text(
                    f"SELECT {_ASSIGNMENT_COLUMNS} FROM assignments "
                    "WHERE food_point_id = :id AND state = ANY(:states) ORDER BY assigned_at, order_id"
                ),
                {"id": food_point_id, "states": [str(state) for state in states]},
            )
        ).all()
        return [_assignment(row) for row in rows]

    async def confirm(self, order_id: str, food_point_id: str | None = None) -> bool:
        """orders says the order is assigned here: reserved -> confirmed (once)."""
        found = _confirm_params(order_id, food_point_id)
        if found is None:
            return False
        condition, params = found
        return bool((await self.conn.execute(text(_CONFIRM + condition), params)).rowcount)

    async def unconfirmed(self, older_than_seconds: float, limit: int = 100) -> list[tuple[str, str]]:
        """(order id, food point id) of reservations orders has not confirmed for a while."""
        rows = (
            await self.conn.execute(
                text(
                    "SELECT order_id::text AS order_id, food_point_id::text AS food_point_id FROM assignments "
                    "WHERE state = 'reserved' "
                    "AND COALESCE(last_confirm_at, assigned_at) < now() - make_interval(secs => :age) "
                    "ORDER BY assigned_at LIMIT :limit"
                ),
                {"age": float(older_than_seconds), "limit": limit},
            )
        ).all()
        return [(row.order_id, row.food_point_id) for row in rows]

    async def note_confirm_attempt(self, order_id: str) -> None:
        await self.conn.execute(
            text(
                "UPDATE assignments SET confirm_attempts = confirm_attempts + 1, last_confirm_at = now() "
                "WHERE order_id = :id"
            ),
            {"id": uuid.UUID(order_id)},
        )

    async def release(self, order_id: str, states: tuple[str, ...] = HOLDING_STATES) -> str | None:
        """Give back the slot and the ingredients the order holds (once): the food point id, or None
        when the order holds nothing here in one of `states`."""
        await bump_supply(self.conn)
        row = (
            await self.conn.execute(
                text(
                    "UPDATE assignments SET state = 'released', released_at = now() "
                    "WHERE order_id = :id AND state = ANY(:states) "
                    "RETURNING food_point_id, needs"
                ),
                {"id": uuid.UUID(order_id), "states": list(states)},
            )
        ).one_or_none()
        if row is None:
            return None
        await self._free_slot(row.food_point_id)
        needs = {str(k): int(v) for k, v in dict(json_value(row.needs)).items()}
        for ingredient in sorted(needs):
            await self.conn.execute(
                text(
                    "INSERT INTO stock (food_point_id, ingredient, quantity) VALUES (:id, :ingredient, :quantity) "
                    "ON CONFLICT (food_point_id, ingredient) DO UPDATE "
                    "SET quantity = stock.quantity + EXCLUDED.quantity, updated_at = now()"
                ),
                {"id": row.food_point_id, "ingredient": ingredient, "quantity": needs[ingredient]},
            )
        return str(row.food_point_id)

    async def mark_ready(self, order_id: str) -> str | None:
        """The order is cooked: free its slot (once); the ingredients stay used. The food point id, or None."""
        await bump_supply(self.conn)
        row = (
            await self.conn.execute(
                text(
                    "UPDATE assignments SET state = 'ready', ready_at = now() "
                    "WHERE order_id = :id AND state IN ('reserved', 'confirmed') RETURNING food_point_id"
                ),
                {"id": uuid.UUID(order_id)},
            )
        ).one_or_none()
        if row is None:
            return None
        await self._free_slot(row.food_point_id)
        return str(row.food_point_id)

    async def _free_slot(self, food_point_id: uuid.UUID) -> None:
        """One slot of the food point is free again (released or cooked)."""
        await self.conn.execute(_FREE_SLOT, {"id": food_point_id})
