"""The tables of the kitchen database: food_points, stock, pending_orders, assignments.

Concurrency rules (two assigner instances may run, cooks and events free slots at the same time):
- a slot is taken only by `UPDATE food_points ... WHERE active_orders < capacity AND accepts_delivery`
  and an ingredient only by `UPDATE stock ... WHERE quantity >= :need`; PostgreSQL re-checks those
  conditions on the newest row version after waiting for a row lock, so no food point exceeds its
  capacity and no stock goes negative (the CHECK constraints are the last line);
- locks are always taken in the order pending order -> assignment -> food point -> stock (ingredients
  sorted by name), so transactions of the kitchen never wait on each other in a cycle;
- a pending order is worked on by one transaction at a time (`FOR UPDATE SKIP LOCKED`), and an order
  has at most one assignment row (its primary key);
- an assignment gives its slot back exactly once: only the UPDATE that moves it out of reserved or
  confirmed frees the slot.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import text

from sandwich.platform.inbox import CLAIMED, Effect
from sandwich.platform.sql import Connection
from sandwich.services.kitchen.domain import (
    HOLDING_STATES,
    Assignment,
    AssignmentState,
    FoodPoint,
    PendingOrder,
    PointState,
    rank_candidates,
)

NOTIFY_CHANNEL = "kitchen_assigner"

_FOOD_POINT_COLUMNS = (
    "id::text AS id, name, address, lat, lon, capacity, accepts_delivery, active_orders, created_at"
)
_PENDING_COLUMNS = (
    "order_id::text AS order_id, user_id::text AS user_id, username, items, delivery, lat, lon, paid_at"
)
_ASSIGNMENT_COLUMNS = (
    "order_id::text AS order_id, food_point_id::text AS food_point_id, user_id::text AS user_id, username, "
    "items, needs, delivery, state, paid_at, assigned_at"
)
EDITABLE_FIELDS = ("name", "address", "lat", "lon", "capacity", "accepts_delivery")


def _json(raw: Any) -> Any:
    # SQLAlchemy's asyncpg dialect decodes jsonb; a plain string would mean a driver without that codec.
    return orjson.loads(raw) if isinstance(raw, str | bytes) else raw


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def as_uuid(value: str) -> uuid.UUID | None:
    """The UUID in `value`, or None when it is not one (the caller answers 404 or 422)."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


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


def _pending(row: Any) -> PendingOrder:
    return PendingOrder(
        order_id=row.order_id,
        user_id=row.user_id,
        username=row.username,
        items=list(_json(row.items)),
        delivery=dict(_json(row.delivery)),
        lat=float(row.lat),
        lon=float(row.lon),
        paid_at=row.paid_at,
    )


def _assignment(row: Any) -> Assignment:
    return Assignment(
        order_id=row.order_id,
        food_point_id=row.food_point_id,
        user_id=row.user_id,
        username=row.username,
        items=list(_json(row.items)),
        needs={str(k): int(v) for k, v in dict(_json(row.needs)).items()},
        delivery=dict(_json(row.delivery)),
        state=AssignmentState(row.state),
        paid_at=row.paid_at,
        assigned_at=row.assigned_at,
    )


async def bump_supply(conn: Connection) -> None:
    """Record that what food points can take changed (a point, its stock, a freed slot): waiting
    orders are tried again only after such a change, not on every pass."""
    await conn.execute(text("UPDATE supply SET version = version + 1 WHERE id = 1"))


async def supply_version(conn: Connection) -> int:
    return int((await conn.execute(text("SELECT version FROM supply WHERE id = 1"))).scalar_one())


def notify_assigner(conn: Connection) -> None:
    """Wake every assigner once the caller's work has committed (`Connection.notify`)."""
    conn.notify(NOTIFY_CHANNEL)


# --- food points and stock -------------------------------------------------------------------------


async def insert_food_point(
    conn: Connection,
    *,
    name: str,
    address: str,
    lat: float,
    lon: float,
    capacity: int,
    accepts_delivery: bool,
    food_point_id: str | None = None,
) -> FoodPoint:
    await bump_supply(conn)
    row = (
        await conn.execute(
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


async def update_food_point(
    conn: Connection, food_point_id: uuid.UUID, changes: Mapping[str, Any]
) -> FoodPoint | None:
    """Change the given fields (a subset of EDITABLE_FIELDS); None when there is no such food point."""
    await bump_supply(conn)
    fields = [name for name in EDITABLE_FIELDS if name in changes]
    assignments = ", ".join([*(f"{name} = :{name}" for name in fields), "updated_at = now()"])
    row = (
        await conn.execute(
            text(f"UPDATE food_points SET {assignments} WHERE id = :id RETURNING {_FOOD_POINT_COLUMNS}"),
            {"id": food_point_id, **{name: changes[name] for name in fields}},
        )
    ).one_or_none()
    return _food_point(row) if row else None


async def food_point(conn: Connection, food_point_id: uuid.UUID) -> FoodPoint | None:
    row = (
        await conn.execute(
            text(f"SELECT {_FOOD_POINT_COLUMNS} FROM food_points WHERE id = :id"), {"id": food_point_id}
        )
    ).one_or_none()
    return _food_point(row) if row else None


async def all_food_points(conn: Connection) -> list[FoodPoint]:
    rows = (
        await conn.execute(text(f"SELECT {_FOOD_POINT_COLUMNS} FROM food_points ORDER BY created_at, id"))
    ).all()
    return [_food_point(row) for row in rows]


async def stock_of(conn: Connection, food_point_id: uuid.UUID | None = None) -> dict[str, dict[str, int]]:
    """{food point id: {ingredient: quantity}} of one food point, or of all of them."""
    query = "SELECT food_point_id::text AS food_point_id, ingredient, quantity FROM stock"
    params: dict[str, Any] = {}
    if food_point_id is not None:
        query += " WHERE food_point_id = :id"
        params["id"] = food_point_id
    rows = (await conn.execute(text(query + " ORDER BY ingredient"), params)).all()
    stock: dict[str, dict[str, int]] = {}
    for row in rows:
        stock.setdefault(row.food_point_id, {})[row.ingredient] = int(row.quantity)
    return stock


async def put_stock(conn: Connection, food_point_id: uuid.UUID, ingredient: str, quantity: int) -> bool:
    """Set how much of an ingredient a food point has; False when there is no such food point."""
    await bump_supply(conn)
    result = await conn.execute(
        text(
            "INSERT INTO stock (food_point_id, ingredient, quantity) "
            "SELECT :id, :ingredient, :quantity WHERE EXISTS (SELECT 1 FROM food_points WHERE id = :id) "
            "ON CONFLICT (food_point_id, ingredient) DO UPDATE "
            "SET quantity = EXCLUDED.quantity, updated_at = now()"
        ),
        {"id": food_point_id, "ingredient": ingredient, "quantity": quantity},
    )
    return bool(result.rowcount)


# --- pending orders --------------------------------------------------------------------------------


def _add_pending_sql(guard: str) -> str:
    """Remember a paid order until a food point takes it; once per order, never after its assignment."""
    return (
        "INSERT INTO pending_orders (order_id, user_id, username, items, delivery, lat, lon, paid_at) "
        "SELECT :order_id, :user_id, :username, CAST(:items AS jsonb), CAST(:delivery AS jsonb), "
        ":lat, :lon, :paid_at "
        f"WHERE NOT EXISTS (SELECT 1 FROM assignments WHERE order_id = :order_id){guard} "
        "ON CONFLICT (order_id) DO NOTHING"
    )


def _pending_params(order: PendingOrder) -> dict[str, Any]:
    return {
        "order_id": uuid.UUID(order.order_id),
        "user_id": uuid.UUID(order.user_id),
        "username": order.username,
        "items": _dumps(order.items),
        "delivery": _dumps(order.delivery),
        "lat": order.lat,
        "lon": order.lon,
        "paid_at": order.paid_at,
    }


async def add_pending(conn: Connection, order: PendingOrder) -> bool:
    """Remember a paid order until a food point takes it; once per order, never after its assignment."""
    result = await conn.execute(text(_add_pending_sql("")), _pending_params(order))
    return bool(result.rowcount)


def add_pending_effect(order: PendingOrder) -> Effect:
    """add_pending as the consumer's Effect (with its inbox claim), waking the assigners when it added."""
    return Effect(
        f"added AS ({_add_pending_sql(f' AND {CLAIMED}')} RETURNING 1)",
        _pending_params(order),
        result="(SELECT count(*) FROM added) AS added",
        notifications=lambda row: [(NOTIFY_CHANNEL, "")] if row.added else [],
    )


# Never tried: through an index of its own (migration 0003), on every pass.
_UNTRIED_PENDING = text(
    f"SELECT {_PENDING_COLUMNS} FROM pending_orders WHERE tried_at_supply IS NULL AND cancel_requested_at IS NULL "
    "ORDER BY paid_at, order_id LIMIT :limit"
)
# The same, with the supply version read in the same statement (what a pass starts with).
_UNTRIED_WITH_SUPPLY = text(
    f"SELECT s.version AS supply, p.* FROM supply AS s LEFT JOIN LATERAL (SELECT {_PENDING_COLUMNS} "
    "FROM pending_orders WHERE tried_at_supply IS NULL AND cancel_requested_at IS NULL "
    "ORDER BY paid_at, order_id LIMIT :limit) AS p ON true WHERE s.id = 1"
)
# Past the assignment timeout: asked on the assigner's timer only. A pass runs on every paid order,
# and while the table's statistics lag behind a fast-growing queue PostgreSQL may answer this by
# reading every waiting order (seen: 750 rows read per order placed).
_EXPIRED_PENDING = text(
    f"SELECT {_PENDING_COLUMNS} FROM pending_orders WHERE cancel_requested_at IS NULL "
    "AND paid_at < now() - make_interval(secs => :timeout) ORDER BY paid_at, order_id LIMIT :limit"
)
# Tried before the last supply change. No index makes "oldest first among the stale" cheap while
# none is stale (PostgreSQL walks the waiting orders by age looking for one), so the assigner asks
# this only when the supply changed since it last found them all, and on its safety-net timer.
_STALE_PENDING = text(
    f"SELECT {_PENDING_COLUMNS} FROM pending_orders WHERE cancel_requested_at IS NULL "
    "AND tried_at_supply < :supply ORDER BY paid_at, order_id LIMIT :limit"
)


async def untried_orders(conn: Connection, limit: int = 500) -> tuple[int, list[Any]]:
    """(supply version, the rows of the orders never tried, oldest first), in one statement."""
    rows = (await conn.execute(_UNTRIED_WITH_SUPPLY, {"limit": limit})).all()
    return int(rows[0].supply), [row for row in rows if row.order_id is not None]


async def pending_orders(
    conn: Connection,
    limit: int = 500,
    timeout_seconds: float = 600.0,
    *,
    stale_before: int | None = None,
    with_expired: bool = True,
    untried: list[Any] | None = None,
) -> list[PendingOrder]:
    """Orders worth trying now, oldest first: never tried, with `with_expired` those past the
    assignment timeout (those being cancelled are not waiting), and with `stale_before` also those
    tried at an older supply version; `untried`: the never-tried rows, read already (untried_orders).

    Orders that already failed at the current supply cost nothing however many of them wait.
    """
    asked: list[tuple[Any, dict[str, Any]]] = (
        [] if untried is not None else [(_UNTRIED_PENDING, {"limit": limit})]
    )
    if with_expired:
        asked.append((_EXPIRED_PENDING, {"limit": limit, "timeout": float(timeout_seconds)}))
    if stale_before is not None:
        asked.append((_STALE_PENDING, {"limit": limit, "supply": stale_before}))
    found: dict[Any, Any] = {row.order_id: row for row in untried or ()}
    for statement, params in asked:
        for row in (await conn.execute(statement, params)).all():
            found.setdefault(row.order_id, row)
    rows = sorted(found.values(), key=lambda row: (row.paid_at, row.order_id))
    return [_pending(row) for row in rows[:limit]]


async def lock_pending(
    conn: Connection, order_id: str, timeout_seconds: float
) -> tuple[PendingOrder, bool] | None:
    """Lock one waiting order for this transaction: (order, waited past the timeout), or None when it is
    gone, being cancelled, or another transaction works on it right now."""
    row = (
        await conn.execute(
            text(
                f"SELECT {_PENDING_COLUMNS}, paid_at < now() - make_interval(secs => :timeout) AS expired "
                "FROM pending_orders WHERE order_id = :id AND cancel_requested_at IS NULL "
                "FOR UPDATE SKIP LOCKED"
            ),
            {"id": uuid.UUID(order_id), "timeout": float(timeout_seconds)},
        )
    ).one_or_none()
    return (_pending(row), bool(row.expired)) if row else None


async def note_attempt(conn: Connection, order_id: str, tried_at_supply: int | None = None) -> None:
    await note_attempts(conn, [order_id], tried_at_supply)


async def note_attempts(conn: Connection, order_ids: list[str], tried_at_supply: int | None = None) -> None:
    """The orders were tried (at supply version `tried_at_supply`, if given), in one statement."""
    await conn.execute(
        text(
            "UPDATE pending_orders SET attempts = attempts + 1, last_attempt_at = now(), "
            "tried_at_supply = COALESCE(:supply, tried_at_supply) WHERE order_id = ANY(:ids)"
        ),
        {"ids": [uuid.UUID(order_id) for order_id in order_ids], "supply": tried_at_supply},
    )


async def request_cancel(conn: Connection, order_id: str) -> None:
    await conn.execute(
        text("UPDATE pending_orders SET cancel_requested_at = now() WHERE order_id = :id"),
        {"id": uuid.UUID(order_id)},
    )


async def cancellations_due(conn: Connection, older_than_seconds: float, limit: int = 100) -> list[str]:
    """Timed-out orders whose cancellation orders has not confirmed, last tried a while ago."""
    rows = (
        await conn.execute(
            text(
                "SELECT order_id::text AS order_id FROM pending_orders WHERE cancel_requested_at IS NOT NULL "
                "AND GREATEST(last_attempt_at, cancel_requested_at) < now() - make_interval(secs => :age) "
                "ORDER BY cancel_requested_at LIMIT :limit"
            ),
            {"age": float(older_than_seconds), "limit": limit},
        )
    ).all()
    return [row.order_id for row in rows]


async def drop_pending(conn: Connection, order_id: str) -> bool:
    result = await conn.execute(
        text("DELETE FROM pending_orders WHERE order_id = :id"), {"id": uuid.UUID(order_id)}
    )
    return bool(result.rowcount)


# --- reserving -------------------------------------------------------------------------------------


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


async def candidate_snapshot(conn: Connection, needs: Mapping[str, int]) -> tuple[int, list[PointState]]:
    """(supply version, food points that might take an order with these needs), read together."""
    rows = (await conn.execute(_CANDIDATES, {"ingredients": sorted(needs)})).all()
    points = [
        PointState(
            food_point_id=row.id,
            lat=float(row.lat),
            lon=float(row.lon),
            capacity=int(row.capacity),
            active_orders=int(row.active_orders),
            accepts_delivery=bool(row.accepts_delivery),
            stock={str(name): int(quantity) for name, quantity in dict(_json(row.stock)).items()},
        )
        for row in rows
        if row.id is not None
    ]
    return int(rows[0].supply), points


async def candidate_points(conn: Connection, needs: Mapping[str, int]) -> list[PointState]:
    """Food points that accept delivery and have a free slot, with their stock of the needed ingredients."""
    return (await candidate_snapshot(conn, needs))[1]


class _Unavailable(Exception):
    """The food point lost its free slot or an ingredient since the snapshot: roll back to the savepoint."""


async def reserve(conn: Connection, food_point_id: str, needs: Mapping[str, int]) -> None:
    """Take one slot and the needed ingredients at a food point, or raise _Unavailable (use in a savepoint)."""
    point_id = uuid.UUID(food_point_id)
    taken = await conn.execute(
        text(
            "UPDATE food_points SET active_orders = active_orders + 1 "
            "WHERE id = :id AND active_orders < capacity AND accepts_delivery"
        ),
        {"id": point_id},
    )
    if not taken.rowcount:
        raise _Unavailable(food_point_id)
    for ingredient in sorted(needs):
        used = await conn.execute(
            text(
                "UPDATE stock SET quantity = quantity - :need, updated_at = now() "
                "WHERE food_point_id = :id AND ingredient = :ingredient AND quantity >= :need"
            ),
            {"id": point_id, "ingredient": ingredient, "need": needs[ingredient]},
        )
        if not used.rowcount:
            raise _Unavailable(food_point_id)


async def try_assign(conn: Connection, order: PendingOrder, needs: Mapping[str, int]) -> str | None:
    """In the caller's transaction (with the pending row locked): reserve at the nearest food point that
    can take the order, record the assignment and forget the pending row. The food point id, or None.

    Each candidate is tried inside a savepoint; one that lost its slot or an ingredient since the
    snapshot is rolled back (its row locks released) and the next nearest is tried.
    """
    for point in rank_candidates(await candidate_points(conn, needs), needs, order.lat, order.lon):
        try:
            async with conn.begin_nested():
                await reserve(conn, point.food_point_id, needs)
        except _Unavailable:
            continue
        await record_assignment(conn, order, point.food_point_id, needs)
        await drop_pending(conn, order.order_id)
        return point.food_point_id
    return None


async def record_assignment(
    conn: Connection, order: PendingOrder, food_point_id: str, needs: Mapping[str, int]
) -> None:
    await conn.execute(
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
            "items": _dumps(order.items),
            "needs": _dumps(dict(needs)),
            "delivery": _dumps(order.delivery),
            "paid_at": order.paid_at,
        },
    )


# --- assignments -----------------------------------------------------------------------------------


async def assignment(conn: Connection, order_id: uuid.UUID) -> Assignment | None:
    row = (
        await conn.execute(
            text(f"SELECT {_ASSIGNMENT_COLUMNS} FROM assignments WHERE order_id = :id"), {"id": order_id}
        )
    ).one_or_none()
    return _assignment(row) if row else None


async def assignments_at(
    conn: Connection, food_point_id: uuid.UUID, states: tuple[str, ...] = HOLDING_STATES
) -> list[Assignment]:
    """A food point's orders in the given states, oldest assignment first."""
    rows = (
        await conn.execute(
            text(
                f"SELECT {_ASSIGNMENT_COLUMNS} FROM assignments "
                "WHERE food_point_id = :id AND state = ANY(:states) ORDER BY assigned_at, order_id"
            ),
            {"id": food_point_id, "states": [str(state) for state in states]},
        )
    ).all()
    return [_assignment(row) for row in rows]


_CONFIRM = "UPDATE assignments SET state = 'confirmed', confirmed_at = now() WHERE order_id = :id AND state = 'reserved'"


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


async def confirm(conn: Connection, order_id: str, food_point_id: str | None = None) -> bool:
    """orders says the order is assigned here: reserved -> confirmed (once)."""
    found = _confirm_params(order_id, food_point_id)
    if found is None:
        return False
    condition, params = found
    return bool((await conn.execute(text(_CONFIRM + condition), params)).rowcount)


def confirm_effect(order_id: str, food_point_id: str) -> Effect | None:
    """confirm as the consumer's Effect (with its inbox claim); None for a malformed food point id."""
    found = _confirm_params(order_id, food_point_id)
    if found is None:
        return None
    condition, params = found
    return Effect(f"confirmed AS ({_CONFIRM}{condition} AND {CLAIMED})", params)


async def unconfirmed(conn: Connection, older_than_seconds: float, limit: int = 100) -> list[tuple[str, str]]:
    """(order id, food point id) of reservations orders has not confirmed for a while."""
    rows = (
        await conn.execute(
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


async def note_confirm_attempt(conn: Connection, order_id: str) -> None:
    await conn.execute(
        text(
            "UPDATE assignments SET confirm_attempts = confirm_attempts + 1, last_confirm_at = now() "
            "WHERE order_id = :id"
        ),
        {"id": uuid.UUID(order_id)},
    )


async def release(conn: Connection, order_id: str, states: tuple[str, ...] = HOLDING_STATES) -> str | None:
    """Give back the slot and the ingredients the order holds (once): the food point id, or None when the
    order holds nothing here in one of `states`."""
    await bump_supply(conn)
    row = (
        await conn.execute(
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
    await conn.execute(
        text("UPDATE food_points SET active_orders = active_orders - 1 WHERE id = :id"),
        {"id": row.food_point_id},
    )
    needs = {str(k): int(v) for k, v in dict(_json(row.needs)).items()}
    for ingredient in sorted(needs):
        await conn.execute(
            text(
                "INSERT INTO stock (food_point_id, ingredient, quantity) VALUES (:id, :ingredient, :quantity) "
                "ON CONFLICT (food_point_id, ingredient) DO UPDATE "
                "SET quantity = stock.quantity + EXCLUDED.quantity, updated_at = now()"
            ),
            {"id": row.food_point_id, "ingredient": ingredient, "quantity": needs[ingredient]},
        )
    return str(row.food_point_id)


async def mark_ready(conn: Connection, order_id: str) -> str | None:
    """The order is cooked: free its slot (once); the ingredients stay used. The food point id, or None."""
    await bump_supply(conn)
    row = (
        await conn.execute(
            text(
                "UPDATE assignments SET state = 'ready', ready_at = now() "
                "WHERE order_id = :id AND state IN ('reserved', 'confirmed') RETURNING food_point_id"
            ),
            {"id": uuid.UUID(order_id)},
        )
    ).one_or_none()
    if row is None:
        return None
    await conn.execute(
        text("UPDATE food_points SET active_orders = active_orders - 1 WHERE id = :id"),
        {"id": row.food_point_id},
    )
    return str(row.food_point_id)
