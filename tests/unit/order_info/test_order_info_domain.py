"""The read model's apply rule: duplicates and reordered streams converge on the same state."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from sandwich.services.order_info.domain import (
    InvalidOrderEvent,
    OrderRecord,
    OrderUpdate,
    apply_update,
    may_read,
    next_view,
    public_history,
    public_order,
    supersedes,
)

pytestmark = pytest.mark.unit

ORDER_ID = "7f6a3c1e-0000-4000-8000-000000000001"
USER_ID = "7f6a3c1e-0000-4000-8000-0000000000aa"
STATUSES = ["created", "paid", "assigned", "ready", "in_delivery", "completed"]


def event(version: int, status: str, **changes: Any) -> dict[str, Any]:
    at = f"2026-01-01T10:00:0{version}Z"
    order = {
        "order_id": ORDER_ID,
        "user_id": USER_ID,
        "username": "alice",
        "status": status,
        "items": [{"menu_item_id": "m1", "name": "Club", "quantity": 2, "price": 45_000}],
        "total": 90_000,
        "delivery": {"address": "Main st 1", "lat": 55.75, "lon": 37.61},
        "food_point_id": None,
        "courier": None,
        "payment_operation_id": None,
        "created_at": "2026-01-01T10:00:00Z",
        "updated_at": at,
        **changes,
    }
    return {"status": status, "previous_status": None, "at": at, "order": order}


def stream() -> list[OrderUpdate]:
    return [OrderUpdate.from_event(v, event(v, status)) for v, status in enumerate(STATUSES, start=1)]


def replay(updates: list[OrderUpdate]) -> OrderRecord:
    record = OrderRecord()
    for update in updates:
        record = apply_update(record, update)
    return record


def test_in_order_stream_ends_in_the_last_state_with_full_history() -> None:
    record = replay(stream())
    assert record.view is not None
    assert record.view.status == "completed"
    assert record.view.version == len(STATUSES)
    assert [entry["status"] for entry in public_history(record.history.values())] == STATUSES


def test_duplicates_change_nothing() -> None:
    updates = stream()
    once = replay(updates)
    assert replay([u for u in updates for _ in range(3)]) == once
    assert apply_update(once, updates[2]) == once


def test_every_reordering_ends_in_the_same_view_and_history() -> None:
    updates = stream()[:4]
    expected = replay(updates)
    for permutation in itertools.permutations(updates):
        assert replay(list(permutation)) == expected


def test_shuffled_stream_with_redeliveries_converges() -> None:
    updates = stream()
    expected = replay(updates)
    rng = random.Random(7)
    for _ in range(50):
        noisy = updates + rng.choices(updates, k=10)
        rng.shuffle(noisy)
        assert replay(noisy) == expected


def test_a_stale_event_adds_its_missing_history_but_keeps_the_newer_view() -> None:
    updates = stream()
    record = apply_update(OrderRecord(), updates[2])
    stale = apply_update(record, updates[0])
    assert stale.view == record.view
    assert sorted(stale.history) == [1, 3]


def test_only_a_strictly_newer_version_supersedes() -> None:
    assert supersedes(None, 1)
    assert supersedes(1, 2)
    assert not supersedes(2, 2)
    assert not supersedes(3, 2)
    first = stream()[0]
    assert next_view(None, first) == first.view()
    assert next_view(first.view(), first) is None


def test_the_event_status_is_what_the_view_shows() -> None:
    update = OrderUpdate.from_event(2, event(2, "paid", payment_operation_id="op-1"))
    view = update.view()
    assert view.status == "paid"
    assert view.user_id == USER_ID
    assert public_order(view.snapshot)["payment_operation_id"] == "op-1"


def test_the_public_order_has_the_contract_fields_and_not_the_owner() -> None:
    shown = public_order(stream()[0].view().snapshot)
    assert set(shown) == {
        "order_id",
        "username",
        "status",
        "items",
        "total",
        "delivery",
        "food_point_id",
        "courier",
        "payment_operation_id",
        "reason",
        "created_at",
        "updated_at",
    }


@pytest.mark.parametrize(
    ("version", "changes"),
    [
        (0, {}),
        (1, {"created_at": "yesterday"}),
        (1, {"order_id": "not-a-uuid"}),
        (1, {"user_id": "42"}),
    ],
)
def test_malformed_events_are_refused(version: int, changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidOrderEvent):
        OrderUpdate.from_event(version, event(1, "created", **changes))


def test_only_the_owner_and_admins_may_read() -> None:
    assert may_read(USER_ID, USER_ID, caller_is_admin=False)
    assert not may_read(USER_ID, "someone-else", caller_is_admin=False)
    assert may_read(USER_ID, "someone-else", caller_is_admin=True)
