"""menu's use cases through an in-memory unit of work: the menu shown in its order, items added once
per name letter case aside (a refused item writes nothing), and the lookup orders prices with."""

from __future__ import annotations

import uuid

import pytest

from sandwich.services.menu import commands
from sandwich.services.menu.domain import MAX_LOOKUP_IDS, InvalidMenuItem
from tests.unit.menu.fakes import FakeMenuUnitOfWork

pytestmark = pytest.mark.unit

CLUB = commands.NewItem("Club sandwich", 45_000, [("bread", 2), ("ham", 1)])


async def test_an_added_item_is_stored_committed_and_returned_as_stored() -> None:
    uow = FakeMenuUnitOfWork()
    item = await commands.add_item(CLUB, uow)
    assert uuid.UUID(item.id) and (item.name, item.price) == ("Club sandwich", 45_000)
    assert uow.items.rows == {item.id: item}
    assert uow.commits == 1 and uow.announced == []


async def test_the_item_is_cleaned_and_its_repeated_ingredients_merged_before_storing() -> None:
    uow = FakeMenuUnitOfWork()
    item = await commands.add_item(commands.NewItem("  Club   sandwich ", 1, [("ham", 1), (" ham", 2)]), uow)
    assert item.name == "Club sandwich"
    assert [(i.name, i.quantity) for i in uow.items.rows[item.id].ingredients] == [("ham", 3)]


async def test_a_name_on_the_menu_letter_case_aside_is_refused_and_nothing_is_written() -> None:
    uow = FakeMenuUnitOfWork()
    first = await commands.add_item(CLUB, uow)
    with pytest.raises(commands.MenuItemExists) as refused:
        await commands.add_item(commands.NewItem("CLUB SANDWICH", 1, []), uow)
    assert refused.value.name == "CLUB SANDWICH"
    assert list(uow.items.rows) == [first.id]
    assert (uow.commits, uow.rollbacks) == (1, 1)


@pytest.mark.parametrize(
    "bad",
    [
        commands.NewItem("   ", 100, []),
        commands.NewItem("Free lunch", 0, []),
        commands.NewItem("Gold", 10_000_001, []),
        commands.NewItem("Odd", 100, [("bread", 0)]),
    ],
)
async def test_an_item_breaking_a_menu_rule_is_refused_before_the_unit_opens(bad: commands.NewItem) -> None:
    uow = FakeMenuUnitOfWork()
    with pytest.raises(InvalidMenuItem):
        await commands.add_item(bad, uow)
    assert uow.items.rows == {} and (uow.commits, uow.rollbacks) == (0, 0)


async def test_the_menu_is_shown_alphabetically_without_letter_case() -> None:
    uow = FakeMenuUnitOfWork()
    for name in ("club", "Blt", "avocado toast", "Zucchini wrap"):
        await commands.add_item(commands.NewItem(name, 100, []), uow)
    assert [item.name for item in await commands.menu(uow)] == [
        "avocado toast",
        "Blt",
        "club",
        "Zucchini wrap",
    ]


async def test_an_empty_menu_is_an_empty_list() -> None:
    assert await commands.menu(FakeMenuUnitOfWork()) == []


async def test_the_lookup_answers_the_known_ids_and_leaves_unknown_ones_out() -> None:
    uow = FakeMenuUnitOfWork()
    club = await commands.add_item(CLUB, uow)
    await commands.add_item(commands.NewItem("Blt", 300, []), uow)
    unknown = uuid.uuid4()
    assert await commands.items_by_ids([uuid.UUID(club.id), unknown], uow) == [club]
    assert await commands.items_by_ids([], uow) == []


async def test_a_lookup_of_more_than_the_limit_is_refused_without_reading() -> None:
    uow = FakeMenuUnitOfWork()
    assert await commands.items_by_ids([uuid.uuid4() for _ in range(MAX_LOOKUP_IDS)], uow) == []
    with pytest.raises(commands.TooManyIds):
        await commands.items_by_ids([uuid.uuid4() for _ in range(MAX_LOOKUP_IDS + 1)], uow)
    assert [len(ids) for ids in uow.items.lookups] == [MAX_LOOKUP_IDS]


async def test_reads_commit_nothing() -> None:
    uow = FakeMenuUnitOfWork()
    await commands.add_item(CLUB, uow)
    await commands.menu(uow)
    await commands.items_by_ids([uuid.uuid4()], uow)
    assert uow.commits == 1
