"""The deliveries table of the delivery database.

Two writers meet on a row: order events (guarded by the per-order version, so a stale or duplicated
event changes nothing) and couriers (guarded by the row's status, so exactly one take wins). A local
take does not change the version: the in_delivery event that orders publishes for it carries a newer
version and confirms it.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import text

from sandwich.platform.sql import Connection, Row
from sandwich.services.delivery.domain import (
    Delivery,
    DeliveryStatus,
    DeliveryUpdate,
    Pickup,
    TakeOutcome,
    refused_take,
)

_COLUMNS = (
    "order_id::text AS order_id, status, food_point_id, pickup_lat, pickup_lon, pickup_address, "
    "dropoff_address, dropoff_lat, dropoff_lon, items, total, courier, version, ready_at, taken_at, "
    "completed_at"
)

# The WHERE is domain.supersedes, evaluated under the row lock the upsert takes, so two events of
# the same order racing each other still end with the newer one.
_UPSERT = text(
    "INSERT INTO deliveries (order_id, status, food_point_id, pickup_lat, pickup_lon, pickup_address, "
    "dropoff_address, dropoff_lat, dropoff_lon, items, total, courier, version, ready_at, taken_at, "
    "completed_at) "
    "VALUES (:order_id, :status, :food_point_id, :pickup_lat, :pickup_lon, :pickup_address, "
    ":dropoff_address, :dropoff_lat, :dropoff_lon, CAST(:items AS jsonb), :total, :courier, :version, "
    ":ready_at, :taken_at, :completed_at) "
    "ON CONFLICT (order_id) DO UPDATE SET status = EXCLUDED.status, courier = EXCLUDED.courier, "
    "version = EXCLUDED.version, "
    "food_point_id = COALESCE(EXCLUDED.food_point_id, deliveries.food_point_id), "
    "pickup_lat = COALESCE(EXCLUDED.pickup_lat, deliveries.pickup_lat), "
    "pickup_lon = COALESCE(EXCLUDED.pickup_lon, deliveries.pickup_lon), "
    "pickup_address = COALESCE(EXCLUDED.pickup_address, deliveries.pickup_address), "
    "dropoff_address = EXCLUDED.dropoff_address, dropoff_lat = EXCLUDED.dropoff_lat, "
    "dropoff_lon = EXCLUDED.dropoff_lon, items = EXCLUDED.items, total = EXCLUDED.total, "
    "ready_at = COALESCE(deliveries.ready_at, EXCLUDED.ready_at), "
    "taken_at = COALESCE(deliveries.taken_at, EXCLUDED.taken_at), "
    "completed_at = COALESCE(deliveries.completed_at, EXCLUDED.completed_at), updated_at = now() "
    "WHERE deliveries.version < EXCLUDED.version"
)

# Exactly one courier wins: concurrent UPDATEs of the row queue on its lock, and each one after the
# first re-checks the WHERE against the committed row, which is no longer ready.
_TAKE = text(
    "UPDATE deliveries SET status = 'in_delivery', courier = :courier, taken_at = now(), updated_at = now() "
    "WHERE order_id = :order_id AND status = 'ready' AND courier IS NULL RETURNING version"
)
_STATE = text("SELECT status, courier FROM deliveries WHERE order_id = :order_id")
# Undo a take orders refused. The version guard leaves alone a take that orders did accept after all
# (its in_delivery event has raised the version since).
_RELEASE = text(
    "UPDATE deliveries SET status = 'ready', courier = NULL, taken_at = NULL, updated_at = now() "
    "WHERE order_id = :order_id AND status = 'in_delivery' AND courier = :courier AND version = :version"
)
_COMPLETE = text(
    "UPDATE deliveries SET status = 'completed', completed_at = COALESCE(completed_at, now()), "
    "updated_at = now() WHERE order_id = :order_id AND courier = :courier AND status = 'in_delivery'"
)
_OFFERED = text(
    f"SELECT {_COLUMNS} FROM deliveries WHERE status = 'ready' AND courier IS NULL "
    "ORDER BY ready_at, order_id LIMIT :limit"
)
_OF_COURIER = text(
    f"SELECT {_COLUMNS} FROM deliveries WHERE courier = :courier "
    "ORDER BY (status = 'in_delivery') DESC, coalesce(completed_at, taken_at) DESC, order_id LIMIT :limit"
)
_SET_PICKUP = text(
    "UPDATE deliveries SET pickup_lat = :lat, pickup_lon = :lon, pickup_address = :address, "
    "updated_at = now() WHERE food_point_id = :food_point_id AND pickup_lat IS NULL"
)
_MISSING_PICKUPS = text(
    "SELECT DISTINCT food_point_id FROM deliveries "
    "WHERE pickup_lat IS NULL AND status = 'ready' AND food_point_id IS NOT NULL LIMIT :limit"
)

# A take that keeps meeting a released row gives up after this many tries (and is answered as taken).
TAKE_ATTEMPTS = 3


def _json(raw: Any) -> Any:
    # SQLAlchemy's asyncpg dialect decodes jsonb; a plain string would mean a driver without that codec.
    return orjson.loads(raw) if isinstance(raw, str | bytes) else raw


def _to_delivery(row: Row) -> Delivery:
    pickup = None
    if row.pickup_lat is not None and row.pickup_lon is not None:
        pickup = Pickup(row.pickup_lat, row.pickup_lon, row.pickup_address)
    return Delivery(
        order_id=row.order_id,
        status=DeliveryStatus(row.status),
        food_point_id=row.food_point_id,
        pickup=pickup,
        dropoff_address=row.dropoff_address,
        dropoff_lat=row.dropoff_lat,
        dropoff_lon=row.dropoff_lon,
        items=_json(row.items),
        total=row.total,
        courier=row.courier,
        version=row.version,
        ready_at=row.ready_at,
        taken_at=row.taken_at,
        completed_at=row.completed_at,
    )


class PostgresDeliveries:
    """The deliveries table on one connection (the unit of work's): the SQL above, one method each."""

    def __init__(self, conn: Connection):
        self.conn = conn

    async def apply_update(self, update: DeliveryUpdate, pickup: Pickup | None = None) -> bool:
        """Apply one order event in the caller's transaction; True when the row changed."""
        result = await self.conn.execute(
            _UPSERT,
            {
                "order_id": update.order_id,
                "status": update.status.value,
                "food_point_id": update.food_point_id,
                "pickup_lat": pickup.lat if pickup else None,
                "pickup_lon": pickup.lon if pickup else None,
                "pickup_address": pickup.address if pickup else None,
                "dropoff_address": update.dropoff_address,
                "dropoff_lat": update.dropoff_lat,
                "dropoff_lon": update.dropoff_lon,
                "items": orjson.dumps(update.items).decode(),
                "total": update.total,
                "courier": update.courier,
                "version": update.version,
                "ready_at": update.ready_at,
                "taken_at": update.taken_at,
                "completed_at": update.completed_at,
            },
        )
        return bool(result.rowcount)

    async def state(self, order_id: uuid.UUID) -> tuple[str, str | None] | None:
        """(status, courier) of one delivery, or None when delivery has no row for the order."""
        row = (await self.conn.execute(_STATE, {"order_id": order_id})).one_or_none()
        return (row.status, row.courier) if row else None

    async def load(self, order_id: uuid.UUID) -> Delivery | None:
        row = (
            await self.conn.execute(
                text(f"SELECT {_COLUMNS} FROM deliveries WHERE order_id = :id"), {"id": order_id}
            )
        ).one_or_none()
        return _to_delivery(row) if row else None

    async def take(self, order_id: uuid.UUID, courier: str) -> tuple[TakeOutcome, int | None]:
        """Try to take the order for `courier`: (WON, the row's version) for exactly one of any number
        of concurrent callers; the others learn why not. Commit before telling anyone about a win."""
        for _ in range(TAKE_ATTEMPTS):
            taken = await self.conn.execute(_TAKE, {"order_id": order_id, "courier": courier})
            version = taken.scalar_one_or_none()
            if version is not None:
                return TakeOutcome.WON, int(version)
            outcome = refused_take(await self.state(order_id), courier)
            if outcome is not TakeOutcome.RETRY:
                return outcome, None
        return TakeOutcome.ALREADY_TAKEN, None

    async def release(self, order_id: uuid.UUID, courier: str, version: int) -> bool:
        """Undo `courier`'s take of the order (taken at `version`): it is offered again. True if undone."""
        result = await self.conn.execute(
            _RELEASE, {"order_id": order_id, "courier": courier, "version": version}
        )
        return bool(result.rowcount)

    async def mark_completed(self, order_id: uuid.UUID, courier: str) -> bool:
        result = await self.conn.execute(_COMPLETE, {"order_id": order_id, "courier": courier})
        return bool(result.rowcount)

    async def offered(self, limit: int) -> list[Delivery]:
        """Deliveries ready and not taken, oldest first, at most `limit`."""
        rows = (await self.conn.execute(_OFFERED, {"limit": limit})).all()
        return [_to_delivery(row) for row in rows]

    async def of_courier(self, courier: str, limit: int) -> list[Delivery]:
        """The courier's deliveries: the ones on the way first, then the latest delivered."""
        rows = (await self.conn.execute(_OF_COURIER, {"courier": courier, "limit": limit})).all()
        return [_to_delivery(row) for row in rows]

    async def set_pickup(self, food_point_id: str, pickup: Pickup) -> int:
        """Fill in the pickup point of every delivery from this food point that lacks it."""
        result = await self.conn.execute(
            _SET_PICKUP,
            {"food_point_id": food_point_id, "lat": pickup.lat, "lon": pickup.lon, "address": pickup.address},
        )
        return int(result.rowcount)

    async def food_points_missing_pickup(self, limit: int = 100) -> list[str]:
        rows = (await self.conn.execute(_MISSING_PICKUPS, {"limit": limit})).all()
        return [str(row.food_point_id) for row in rows]
