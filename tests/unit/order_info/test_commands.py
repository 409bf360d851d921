"""order_info's use cases through the in-memory unit of work: an event creates or moves the view, an
older or repeated one changes nothing of it, histories come in version order with trace ids for
admins only, orders' copy stands in while the view is missing, and another customer's order does
not exist for a customer."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from sandwich.services.order_info.commands import (
    ReadOrder,
    apply_order_event,
    customer_orders,
    order_stream_ended,
    order_with_history,
)
from sandwich.services.order_info.domain import OrderNotFound, OrderUpdate, Reader
from sandwich.services.order_info.ports import WrittenOrder
from tests.unit.order_info.fakes import FakeOrderInfoUnitOfWork, FakeWriteSide

pytestmark = pytest.mark.unit

ORDER = uuid.UUID("7f6a3c1e-0000-4000-8000-000000000001")
ALICE = Reader("7f6a3c1e-0000-4000-8000-0000000000a1")
BOB = Reader("7f6a3c1e-0000-4000-8000-0000000000b2")
ADMIN = Reader("7f6a3c1e-0000-4000-8000-0000000000ad", is_admin=True)
STATUSES = ["created", "paid", "assigned", "ready", "in_delivery", "completed"]


def update(
    version: int, *, order_id: uuid.UUID = ORDER, owner: Reader = ALICE, minute: int = 0
) -> OrderUpdate:
    status = STATUSES[version - 1]
    at = f"2026-03-01T10:{minute:02d}:{version:02d}Z"
    order = {
        "order_id": str(order_id),
        "user_id": owner.user_id,
        "username": "alice",
        "status": status,
        "items": [{"menu_item_id": "m1", "name": "Club", "quantity": 1, "price": 45_000}],
        "total": 45_000,
        "delivery": {"address": "Main st 1", "lat": 55.75, "lon": 37.61},
        "created_at": f"2026-03-01T10:{minute:02d}:00Z",
        "updated_at": at,
    }
    return OrderUpdate.from_event(version, {"status": status, "at": at, "order": order}, f"trace-{version}")


@pytest.fixture
def uow() -> FakeOrderInfoUnitOfWork:
    return FakeOrderInfoUnitOfWork()


@pytest.fixture
def orders() -> FakeWriteSide:
    return FakeWriteSide()


async def read(uow: FakeOrderInfoUnitOfWork, orders: FakeWriteSide, reader: Reader = ALICE) -> Any:
    return await order_with_history(ReadOrder(ORDER, reader), uow, orders)


# --- applying events ---------------------------------------------------------------------------------


async def test_an_event_creates_the_view_and_a_newer_one_updates_it(
    uow: FakeOrderInfoUnitOfWork, orders: FakeWriteSide
) -> None:
    assert await apply_order_event(update(1), uow)
    assert (await read(uow, orders)).order["status"] == "created"
    assert await apply_order_event(update(2), uow)
    found = await read(uow, orders)
    assert found.order["status"] == "paid"
    assert [entry["status"] for entry in found.history] == ["created", "paid"]
    assert uow.commits == 2 and uow.announced == []  # the read side announces nothing
    assert orders.asked == []  # the read model answered


async def test_an_older_version_after_a_newer_one_leaves_the_view_and_fills_the_history(
    uow: FakeOrderInfoUnitOfWork, orders: FakeWriteSide
) -> None:
    assert await apply_order_event(update(3), uow)
    assert not await apply_order_event(update(2), uow)
    found = await read(uow, orders)
    assert found.order["status"] == "assigned"
    assert [entry["status"] for entry in found.history] == ["paid", "assigned"]  # in version order


async def test_a_repeated_event_changes_nothing(uow: FakeOrderInfoUnitOfWork, orders: FakeWriteSide) -> None:
    await apply_order_event(update(1), uow)
    await apply_order_event(update(2), uow)
    before = await read(uow, orders)
    assert not await apply_order_event(update(2), uow)
    assert await read(uow, orders) == before


async def test_any_arrival_order_gives_the_history_in_version_order(
    uow: FakeOrderInfoUnitOfWork, orders: FakeWriteSide
) -> None:
    for version in (4, 1, 6, 2, 5, 3, 4):
        await apply_order_event(update(version), uow)
    found = await read(uow, orders)
    assert [entry["status"] for entry in found.history] == STATUSES
    assert found.order["status"] == "completed"


async def test_admins_see_each_entrys_trace_id_and_customers_do_not(
    uow: FakeOrderInfoUnitOfWork, orders: FakeWriteSide
) -> None:
    for version in (1, 2):
        await apply_order_event(update(version), uow)
    as_admin = await read(uow, orders, ADMIN)
    assert [entry.get("trace_id") for entry in as_admin.history] == ["trace-1", "trace-2"]
    as_owner = await read(uow, orders, ALICE)
    assert all("trace_id" not in entry for entry in as_owner.history)
    assert as_owner.history[0] == {"status": "created", "at": "2026-03-01T10:00:01Z"}


# --- reading -------------------------------------------------------------------------------------------


async def test_another_customers_order_is_not_found(
    uow: FakeOrderInfoUnitOfWork, orders: FakeWriteSide
) -> None:
    await apply_order_event(update(1), uow)
    with pytest.raises(OrderNotFound):
        await read(uow, orders, BOB)
    assert orders.asked == []  # the read model has it: no fallback that might answer otherwise
    assert (await read(uow, orders, ADMIN)).order["order_id"] == str(ORDER)


def written(owner: Reader) -> WrittenOrder:
    return WrittenOrder(
        owner=owner.user_id,
        order={"order_id": str(ORDER), "status": "created"},
        history=[{"status": "created", "at": "2026-03-01T10:00:01Z"}],
    )


async def test_orders_copy_stands_in_while_the_view_is_missing(
    uow: FakeOrderInfoUnitOfWork, orders: FakeWriteSide
) -> None:
    orders.orders[ORDER] = written(ALICE)
    found = await read(uow, orders)
    assert found.order == {"order_id": str(ORDER), "status": "created"}
    assert found.history == [{"status": "created", "at": "2026-03-01T10:00:01Z"}]
    assert orders.asked == [ORDER]


@pytest.mark.parametrize("copy_owner", [None, BOB], ids=["unknown to orders", "someone else's"])
async def test_the_fallback_finds_nothing_for_an_unknown_or_someone_elses_order(
    uow: FakeOrderInfoUnitOfWork, orders: FakeWriteSide, copy_owner: Reader | None
) -> None:
    if copy_owner is not None:
        orders.orders[ORDER] = written(copy_owner)
    with pytest.raises(OrderNotFound):
        await read(uow, orders, ALICE)


async def test_a_customer_lists_their_own_orders_newest_first(uow: FakeOrderInfoUnitOfWork) -> None:
    older, newer, bobs = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await apply_order_event(update(1, order_id=older, minute=1), uow)
    await apply_order_event(update(1, order_id=newer, minute=2), uow)
    await apply_order_event(update(1, order_id=bobs, owner=BOB, minute=3), uow)
    assert [o["order_id"] for o in await customer_orders(ALICE, 10, uow)] == [str(newer), str(older)]
    assert [o["order_id"] for o in await customer_orders(ALICE, 1, uow)] == [str(newer)]
    assert await customer_orders(Reader("not-a-uuid"), 10, uow) == []
    assert "user_id" not in (await customer_orders(ALICE, 1, uow))[0]  # the contract's fields only


# --- the live stream's start ---------------------------------------------------------------------------


async def test_a_stream_has_ended_only_for_a_reader_who_saw_the_terminal_version(
    uow: FakeOrderInfoUnitOfWork, orders: FakeWriteSide
) -> None:
    query = ReadOrder(ORDER, ALICE)
    await apply_order_event(update(5), uow)
    assert not await order_stream_ended(query, 5, uow, orders)  # in delivery: more to come
    await apply_order_event(update(6), uow)
    assert not await order_stream_ended(query, None, uow, orders)  # a new reader gets the final state
    assert not await order_stream_ended(query, 5, uow, orders)
    assert await order_stream_ended(query, 6, uow, orders)
    with pytest.raises(OrderNotFound):
        await order_stream_ended(ReadOrder(ORDER, BOB), 6, uow, orders)


async def test_a_stream_of_an_order_the_view_lacks_starts_when_orders_knows_it_is_the_readers(
    uow: FakeOrderInfoUnitOfWork, orders: FakeWriteSide
) -> None:
    with pytest.raises(OrderNotFound):
        await order_stream_ended(ReadOrder(ORDER, ALICE), None, uow, orders)
    orders.orders[ORDER] = written(ALICE)
    assert not await order_stream_ended(ReadOrder(ORDER, ALICE), None, uow, orders)
    with pytest.raises(OrderNotFound):
        await order_stream_ended(ReadOrder(ORDER, BOB), None, uow, orders)
