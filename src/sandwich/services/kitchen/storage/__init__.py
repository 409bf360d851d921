"""The tables of the kitchen database, one module per aggregate: food_points and stock
(food_points.py), pending_orders (pending.py), assignments (assignments.py), and the supply version
with the assigners' wake-up (rows.py). Each repository holds the SQL of its tables on one connection.

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

from sandwich.services.kitchen.storage.assignments import PostgresAssignments, confirm_effect
from sandwich.services.kitchen.storage.food_points import EDITABLE_FIELDS, PostgresFoodPoints
from sandwich.services.kitchen.storage.pending import PostgresPendingOrders, add_pending_effect
from sandwich.services.kitchen.storage.rows import NOTIFY_CHANNEL, Supply, as_uuid, bump_supply

__all__ = [
    "EDITABLE_FIELDS",
    "NOTIFY_CHANNEL",
    "PostgresAssignments",
    "PostgresFoodPoints",
    "PostgresPendingOrders",
    "Supply",
    "add_pending_effect",
    "as_uuid",
    "bump_supply",
    "confirm_effect",
]
