"""basket's use cases through the in-memory unit of work: setting quantities (absolute, 0 removes,
the menu asked once and only when adding), refusals that change and commit nothing, reading the
basket priced with and without the menu, and a paid order taken out of its basket once."""

from __future__ import annotations

import uuid

import pytest

from sandwich.platform.events import ORDER_EVENT, Envelope
from sandwich.services.basket import commands
from sandwich.services.basket.commands import PaidOrder, SetQuantity, UnknownMenuItem
from sandwich.services.basket.domain import MAX_LINES, BasketFull, MenuEntry
from sandwich.services.basket.handlers import paid_order
from sandwich.services.basket.ports import MenuUnavailable
from tests.unit.basket.fakes import FakeBasketUnitOfWork, FakeMenu

pytestmark = pytest.mark.unit

CLUB = "7f6a3c1e-0000-4000-8000-000000000001"
BLT = "7f6a3c1e-0000-4000-8000-000000000002"
TUNA = "7f6a3c1e-0000-4000-8000-000000000003"
ALICE = uuid.UUID("7f6a3c1e-0000-4000-8000-0000000000a1")
BOB = uuid.UUID("7f6a3c1e-0000-4000-8000-0000000000b0")


@pytest.fixture
def uow() -> FakeBasketUnitOfWork:
    return FakeBasketUnitOfWork()


@pytest.fixture
def menu() -> FakeMenu:
    return FakeMenu(
        {CLUB: MenuEntry("Club", 45_000), BLT: MenuEntry("BLT", 39_900), TUNA: MenuEntry("Tuna", 41_000)}
    )


async def put(
    uow: FakeBasketUnitOfWork, menu: FakeMenu, item: str, quantity: int, user: uuid.UUID = ALICE
) -> dict:  # type: ignore[type-arg]
    return await commands.set_item_quantity(SetQuantity(user, item, quantity), uow, menu)


async def test_adding_items_answers_the_whole_basket_priced(
    uow: FakeBasketUnitOfWork, menu: FakeMenu
) -> None:
    await put(uow, menu, CLUB, 2)
    basket = await put(uow, menu, BLT, 1)
    assert basket == {
        "items": [
            {"menu_item_id": CLUB, "quantity": 2, "name": "Club", "price": 45_000},
            {"menu_item_id": BLT, "quantity": 1, "name": "BLT", "price": 39_900},
        ],
        "total": 129_900,
        "prices_unavailable": False,
    }
    assert uow.commits == 2 and uow.baskets.locked == [ALICE, ALICE]


async def test_one_menu_lookup_checks_the_item_and_prices_the_rest(
    uow: FakeBasketUnitOfWork, menu: FakeMenu
) -> None:
    await put(uow, menu, CLUB, 2)
    menu.asked.clear()
    await put(uow, menu, BLT, 1)
    assert menu.asked == [sorted([CLUB, BLT])]


async def test_a_quantity_is_set_not_added_and_the_line_keeps_its_place(
    uow: FakeBasketUnitOfWork, menu: FakeMenu
) -> None:
    await put(uow, menu, TUNA, 1)
    await put(uow, menu, CLUB, 2)
    basket = await put(uow, menu, TUNA, 4)
    assert [(line["menu_item_id"], line["quantity"]) for line in basket["items"]] == [(TUNA, 4), (CLUB, 2)]
    assert basket["total"] == 4 * 41_000 + 2 * 45_000


async def test_zero_removes_the_line_without_asking_the_menu(
    uow: FakeBasketUnitOfWork, menu: FakeMenu
) -> None:
    await put(uow, menu, CLUB, 2)
    await put(uow, menu, BLT, 1)
    menu.up = False  # an item can be taken out while the menu is away (or after it left the menu)
    menu.asked.clear()
    basket = await put(uow, menu, CLUB, 0)
    assert await uow.baskets.lines_of(ALICE) == [(BLT, 1)]
    assert basket["prices_unavailable"] is True and basket["total"] is None
    assert menu.asked == [[BLT]]  # only to price what is left, never to check the removal


async def test_removing_an_item_that_is_not_there_changes_nothing(
    uow: FakeBasketUnitOfWork, menu: FakeMenu
) -> None:
    await put(uow, menu, CLUB, 1)
    await put(uow, menu, TUNA, 0)
    assert await uow.baskets.lines_of(ALICE) == [(CLUB, 1)]


async def test_an_item_not_on_the_menu_is_refused_and_nothing_is_committed(
    uow: FakeBasketUnitOfWork, menu: FakeMenu
) -> None:
    with pytest.raises(UnknownMenuItem):
        await put(uow, menu, str(uuid.uuid4()), 1)
    assert uow.commits == 0 and await uow.baskets.lines_of(ALICE) == []


async def test_adding_while_the_menu_is_away_is_refused_and_changes_nothing(
    uow: FakeBasketUnitOfWork, menu: FakeMenu
) -> None:
    await put(uow, menu, CLUB, 1)
    menu.up = False
    with pytest.raises(MenuUnavailable):
        await put(uow, menu, BLT, 1)
    assert uow.commits == 1 and await uow.baskets.lines_of(ALICE) == [(CLUB, 1)]


async def test_a_full_basket_refuses_another_item_and_rolls_back(
    uow: FakeBasketUnitOfWork, menu: FakeMenu
) -> None:
    many = [str(uuid.UUID(int=n + 1)) for n in range(MAX_LINES)]
    uow.baskets.lines[ALICE] = {item: 1 for item in many}
    menu.entries[many[0]] = MenuEntry("Old favourite", 10_000)
    with pytest.raises(BasketFull):
        await put(uow, menu, CLUB, 1)
    assert (
        uow.commits == 0
        and len(uow.baskets.lines[ALICE]) == MAX_LINES
        and CLUB not in uow.baskets.lines[ALICE]
    )
    basket = await put(uow, menu, many[0], 3)  # a line already there can still change
    assert uow.baskets.lines[ALICE][many[0]] == 3 and basket["items"][0]["quantity"] == 3


async def test_reading_without_the_menu_shows_the_lines_without_prices(
    uow: FakeBasketUnitOfWork, menu: FakeMenu
) -> None:
    await put(uow, menu, CLUB, 2)
    menu.up = False
    basket = await commands.read_basket(ALICE, uow, menu)
    assert basket == {
        "items": [{"menu_item_id": CLUB, "quantity": 2, "name": None, "price": None}],
        "total": None,
        "prices_unavailable": True,
    }


async def test_an_item_that_left_the_menu_shows_unpriced_and_does_not_count(
    uow: FakeBasketUnitOfWork, menu: FakeMenu
) -> None:
    await put(uow, menu, CLUB, 2)
    await put(uow, menu, BLT, 1)
    del menu.entries[CLUB]
    basket = await commands.read_basket(ALICE, uow, menu)
    assert basket["items"][0] == {"menu_item_id": CLUB, "quantity": 2, "name": None, "price": None}
    assert basket["total"] == 39_900 and basket["prices_unavailable"] is False


async def test_an_empty_basket_costs_nothing_and_asks_no_menu(
    uow: FakeBasketUnitOfWork, menu: FakeMenu
) -> None:
    assert await commands.read_basket(ALICE, uow, menu) == {
        "items": [],
        "total": 0,
        "prices_unavailable": False,
    }
    assert menu.asked == [] and uow.commits == 0


async def test_orders_get_the_lines_as_they_are(uow: FakeBasketUnitOfWork, menu: FakeMenu) -> None:
    await put(uow, menu, TUNA, 1)
    await put(uow, menu, CLUB, 3)
    assert await commands.basket_lines(ALICE, uow) == [(TUNA, 1), (CLUB, 3)]
    assert await commands.basket_lines(BOB, uow) == []


# --- a paid order taken out of its basket ----------------------------------------------------------


async def test_a_paid_order_is_taken_out_once(uow: FakeBasketUnitOfWork) -> None:
    uow.baskets.lines[ALICE] = {CLUB: 3, BLT: 1}
    order = PaidOrder(uuid.uuid4(), ALICE, [(CLUB, 2), (BLT, 1)])
    assert await commands.take_out_paid_order(order, uow) == "applied"
    assert uow.baskets.lines[ALICE] == {CLUB: 1}
    assert await commands.take_out_paid_order(order, uow) == "already_applied"
    assert uow.baskets.lines[ALICE] == {CLUB: 1} and uow.commits == 1
    assert uow.announced == []  # basket announces nothing


async def test_what_was_added_after_ordering_stays(uow: FakeBasketUnitOfWork) -> None:
    uow.baskets.lines[ALICE] = {CLUB: 3, TUNA: 1}  # ordered 2 clubs, then added one more and a tuna
    await commands.take_out_paid_order(PaidOrder(uuid.uuid4(), ALICE, [(CLUB, 2)]), uow)
    assert uow.baskets.lines[ALICE] == {CLUB: 1, TUNA: 1}


async def test_a_line_never_goes_below_zero(uow: FakeBasketUnitOfWork) -> None:
    uow.baskets.lines[ALICE] = {CLUB: 1}  # lowered after ordering 3
    await commands.take_out_paid_order(PaidOrder(uuid.uuid4(), ALICE, [(CLUB, 3), (BLT, 2)]), uow)
    assert uow.baskets.lines[ALICE] == {}


async def test_another_users_basket_is_untouched(uow: FakeBasketUnitOfWork) -> None:
    uow.baskets.lines[ALICE] = {CLUB: 2}
    uow.baskets.lines[BOB] = {CLUB: 2}
    await commands.take_out_paid_order(PaidOrder(uuid.uuid4(), ALICE, [(CLUB, 2)]), uow)
    assert uow.baskets.lines == {ALICE: {}, BOB: {CLUB: 2}} and uow.baskets.locked == [ALICE]


def order_event(status: str, from_basket: bool, items: list[tuple[str, int]]) -> Envelope:
    now = "2025-01-01T12:00:00Z"
    order_id = str(uuid.uuid4())
    order = {
        "order_id": order_id,
        "user_id": str(ALICE),
        "username": "alice",
        "status": status,
        "items": [{"menu_item_id": item, "name": "x", "quantity": n, "price": 100} for item, n in items],
        "total": 100,
        "delivery": {"address": "Main st 1", "lat": 55.75, "lon": 37.61},
        "created_at": now,
        "updated_at": now,
        "from_basket": from_basket,
    }
    payload = {"status": status, "previous_status": "created", "at": now, "order": order}
    return Envelope(type=ORDER_EVENT, producer="orders", key=order_id, payload=payload)


def test_only_a_paid_order_from_the_basket_is_taken_out() -> None:
    paid = paid_order(order_event("paid", True, [(CLUB.upper(), 2), ("not-a-uuid", 1)]))
    assert paid is not None and paid.user_id == ALICE
    assert paid.lines == [(CLUB, 2)]  # canonical ids; ids that are not UUIDs match nothing
    assert paid_order(order_event("paid", False, [(CLUB, 2)])) is None
    assert paid_order(order_event("created", True, [(CLUB, 2)])) is None
