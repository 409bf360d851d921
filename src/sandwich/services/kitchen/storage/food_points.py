"""Food points and their stock (tables food_points, stock): the admin's records, the candidates an
order may go to, and the reservation of a slot and ingredients (see the package's lock order)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import text

from sandwich.platform.sql import Connection
from sandwich.services.kitchen.domain import FoodPoint, PointState
from sandwich.services.kitchen.storage.rows import bump_supply, json_value

_FOOD_POINT_COLUMNS = (
    "id::text AS id, name, address, lat, lon, capacity, accepts_delivery, active_orders, created_at"
)
EDITABLE_FIELDS = ("name", "address", "lat", "lon", "capacity", "accepts_delivery")

# The supply version and the food points that accept delivery and have a free slot, with their stock
# of the needed ingredients: one statement, so the version is the one the points were read at.
_CANDIDATES = text(
    "SELECT s.version AS supply, f.id::text AS id, f.lat, f.lon, f.capacity, f.active_orders, "
    "f.accepts_delivery, COALESCE(jsonb_object_agg(st.ingredient, st.quantity) "
    "FILTER (WHERE st.ingredient IS NOT NULL), '{}') AS stock "
    "FROM supply AS s LEFT JOIN food_points AS f ON f.accepts_delivery AND f.active_orders < f.capacity "
    "LEFT JOIN stock AS st ON st.food_point_id = f.id AND st.ingredient = ANY(:ingredients) "
    "WHERE s.id = 1 GROUP BY s.version, f.id"
)


def _food_point(row: Any) -> FoodPoint:
    return FoodPoint(
        food_point_id=row.id,
        name=row.name,
        address=row.address,
        lat=float(row.lat),
        lon=float(row.lon),
        capacity=int(row.capacity),
        accepts_delivery=bool(row.accepts_delivery),
        active_orders=int(row.active_orders),
        created_at=row.created_at,
    )


class _Unavailable(Exception):
    """The food point lost its free slot or an ingredient since the snapshot: roll back to the savepoint."""


class PostgresFoodPoints:
    """Food points and stock on one connection; every change of them bumps the supply version."""

    def __init__(self, conn: Connection):
        self.conn = conn

    async def add(
        self,
        *,
        name: str,
        address: str,
        lat: float,
        lon: float,
        capacity: int,
        accepts_delivery: bool,
        food_point_id: str | None = None,
    ) -> FoodPoint:
        await bump_supply(self.conn)
        row = (
            await self.conn.execute(
                text(
                    "INSERT INTO food_points (id, name, address, lat, lon, capacity, accepts_delivery) "
                    "VALUES (:id, :name, :address, :lat, :lon, :capacity, :accepts_delivery) "
                    f"RETURNING {_FOOD_POINT_COLUMNS}"
                ),
                {
                    "id": uuid.UUID(food_point_id) if food_point_id else uuid.uuid4(),
                    "name": name,
                    "address": address,
                    "lat": lat,
                    "lon": lon,
                    "capacity": capacity,
                    "accepts_delivery": accepts_delivery,
                },
            )
        ).one()
        return _food_point(row)

    async def change(self, food_point_id: uuid.UUID, changes: Mapping[str, Any]) -> FoodPoint | None:
        """Change the given fields (a subset of EDITABLE_FIELDS); None when there is no such food point."""
        await bump_supply(self.conn)
        fields = [name for name in EDITABLE_FIELDS if name in changes]
        assignments = ", ".join([*(f"{name} = :{name}" for name in fields), "updated_at = now()"])
        row = (
            await self.conn.execute(
                text(f"UPDATE food_points SET {assignments} WHERE id = :id RETURNING {_FOOD_POINT_COLUMNS}"),
                {"id": food_point_id, **{name: changes[name] for name in fields}},
            )
        ).one_or_none()
        return _food_point(row) if row else None

    async def get(self, food_point_id: uuid.UUID) -> FoodPoint | None:
        row = (
            await self.conn.execute(
                text(f"SELECT {_FOOD_POINT_COLUMNS} FROM food_points WHERE id = :id"), {"id": food_point_id}
            )
        ).one_or_none()
        return _food_point(row) if row else None

    async def all(self) -> list[FoodPoint]:
        rows = (
            await self.conn.execute(
                text(f"SELECT {_FOOD_POINT_COLUMNS} FROM food_points ORDER BY created_at, id")
            )
        ).all()
        return [_food_point(row) for row in rows]

    async def stock_of(self, food_point_id: uuid.UUID | None = None) -> dict[str, dict[str, int]]:
        """{food point id: {ingredient: quantity}} of one food point, or of all of them."""
        query = "SELECT food_point_id::text AS food_point_id, ingredient, quantity FROM stock"
        params: dict[str, Any] = {}
        if food_point_id is not None:
            query += " WHERE food_point_id = :id"
            params["id"] = food_point_id
        rows = (await self.conn.execute(text(query + " ORDER BY ingredient"), params)).all()
        stock: dict[str, dict[str, int]] = {}
        for row in rows:
            stock.setdefault(row.food_point_id, {})[row.ingredient] = int(row.quantity)
        return stock

    async def put_stock(self, food_point_id: uuid.UUID, ingredient: str, quantity: int) -> bool:
        """Set how much of an ingredient a food point has; False when there is no such food point."""
        await bump_supply(self.conn)
        result = await self.conn.execute(
            text(
                "INSERT INTO stock (food_point_id, ingredient, quantity) "
                "SELECT :id, :ingredient, :quantity WHERE EXISTS (SELECT 1 FROM food_points WHERE id = :id) "
                "ON CONFLICT (food_point_id, ingredient) DO UPDATE "
                "SET quantity = EXCLUDED.quantity, updated_at = now()"
            ),
            {"id": food_point_id, "ingredient": ingredient, "quantity": quantity},
        )
        return bool(result.rowcount)

    # --- reserving -------------------------------------------------------------------------------

    async def candidate_snapshot(self, needs: Mapping[str, int]) -> tuple[int, list[PointState]]:
        """(supply version, food points that might take an order with these needs), read together."""
        rows = (await self.conn.execute(_CANDIDATES, {"ingredients": sorted(needs)})).all()
        points = [
            PointState(
                food_point_id=row.id,
                lat=float(row.lat),
                lon=float(row.lon),
                capacity=int(row.capacity),
                active_orders=int(row.active_orders),
                accepts_delivery=bool(row.accepts_delivery),
                stock={str(name): int(quantity) for name, quantity in dict(json_value(row.stock)).items()},
            )
            for row in rows
            if row.id is not None
        ]
        return int(rows[0].supply), points

    async def candidates(self, needs: Mapping[str, int]) -> list[PointState]:
        """Food points that accept delivery and have a free slot, with their stock of the needed ingredients."""
        return (await self.candidate_snapshot(needs))[1]

    async def reserve(self, food_point_id: str, needs: Mapping[str, int]) -> bool:
        """Take one slot and the needed ingredients at a food point, inside a savepoint: False (and
        nothing taken, its row locks released) when it lost its slot or an ingredient since the
        snapshot. Only inside a transaction."""
        try:
            async with self.conn.begin_nested():
                await self._take(food_point_id, needs)
        except _Unavailable:
            return False
        return True

    async def _take(self, food_point_id: str, needs: Mapping[str, int]) -> None:
        """Take the slot and the ingredients, or raise _Unavailable (use in a savepoint)."""
        point_id = uuid.UUID(food_point_id)
        taken = await self.conn.execute(
            text(
                "UPDATE food_points SET active_orders = active_orders + 1 "
                "WHERE id = :id AND active_orders < capacity AND accepts_delivery"
            ),
            {"id": point_id},
        )
        if not taken.rowcount:
            raise _Unavailable(food_point_id)
        for ingredient in sorted(needs):
            used = await self.conn.execute(
                text(
                    "UPDATE stock SET quantity = quantity - :need, updated_at = now() "
                    "WHERE food_point_id = :id AND ingredient = :ingredient AND quantity >= :need"
                ),
                {"id": point_id, "ingredient": ingredient, "need": needs[ingredient]},
            )
            if not used.rowcount:
                raise _Unavailable(food_point_id)
