"""Notifications' use cases through the in-memory unit of work: one letter per (order, kind) for the
statuses that deserve one, addressed through the contacts port, taken by one sender at a time, and
never lost: a failed send comes back later, a released letter at once."""

from __future__ import annotations

import uuid

import pytest

from sandwich.platform.events import (
    ORDER_EVENT,
    DeliveryPayload,
    Envelope,
    OrderEvent,
    OrderItemPayload,
    OrderSnapshot,
)
from sandwich.platform.http import ServiceUnavailable
from sandwich.services.notifications import commands
from sandwich.services.notifications.domain import (
    KIND_BY_STATUS,
    MAX_ATTEMPTS,
    Contact,
    NotificationStatus,
    RecordLetter,
    retry_delay,
)
from sandwich.services.notifications.handlers import OrderEventsConsumer
from sandwich.services.notifications.storage import LEASE_SECONDS
from tests.unit.notifications.fakes import FakeContacts, FakeNotificationsUnitOfWork

pytestmark = pytest.mark.unit

OLGA = Contact("0196a000-0000-4000-8000-000000000001", "olga", "olga@example.com", "Olga Petrova")
NOBODY = "0196a000-0000-4000-8000-0000000000ff"


@pytest.fixture
def uow() -> FakeNotificationsUnitOfWork:
    return FakeNotificationsUnitOfWork()


@pytest.fixture
def contacts() -> FakeContacts:
    return FakeContacts(OLGA)


def order_event(status: str, order_id: str | None = None, user_id: str = OLGA.user_id) -> OrderEvent:
    at = "2026-12-06T10:00:00Z"
    snapshot = OrderSnapshot(
        order_id=order_id or str(uuid.uuid4()),
        user_id=user_id,
        username="olga",
        status=status,
        items=[OrderItemPayload(menu_item_id="m1", name="Club", quantity=1, price=45_000)],
        total=45_000,
        delivery=DeliveryPayload(address="Nevsky 1", lat=59.93, lon=30.33),
        created_at=at,
        updated_at=at,
    )
    return OrderEvent(status=status, at=at, order=snapshot)


def envelope_of(event: OrderEvent) -> Envelope:
    return Envelope(type=ORDER_EVENT, producer="orders", key=event.order.order_id, payload=event.model_dump())


def letter_for(status: str = "paid", user_id: str = OLGA.user_id) -> RecordLetter:
    command = commands.letter_for_order_event(order_event(status, user_id=user_id))
    assert command is not None
    return command


async def stored_letters(uow: FakeNotificationsUnitOfWork, contacts: FakeContacts, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        recorded = await commands.record_letter(letter_for(), uow, contacts)
        ids.append(recorded.notification.notification_id)
    return ids


@pytest.mark.parametrize("status", sorted(KIND_BY_STATUS))
async def test_a_status_that_deserves_a_letter_gets_one_of_its_kind(
    status: str, uow: FakeNotificationsUnitOfWork, contacts: FakeContacts
) -> None:
    recorded = await commands.record_letter(letter_for(status), uow, contacts)

    assert recorded.created
    assert recorded.notification.kind == KIND_BY_STATUS[status]
    assert recorded.notification.status == NotificationStatus.PENDING
    assert "Olga Petrova" in recorded.notification.body  # the name from the contacts port


@pytest.mark.parametrize("status", ["created", "assigned", "ready", "in_delivery"])
async def test_the_steps_a_customer_follows_in_the_app_get_no_letter(
    status: str, contacts: FakeContacts
) -> None:
    assert commands.letter_for_order_event(order_event(status)) is None
    consumer = OrderEventsConsumer(contacts, hand_over=lambda letter: None)
    assert await consumer.on_order_event(envelope_of(order_event(status))) is None
    assert contacts.asked == []  # nobody was asked for an address


async def test_the_consumer_writes_the_letter_with_the_inbox_claim(contacts: FakeContacts) -> None:
    consumer = OrderEventsConsumer(contacts, hand_over=lambda letter: None)
    event = order_event("completed")
    envelope = Envelope(
        type=ORDER_EVENT, producer="orders", key="k", payload=event.model_dump(warnings=False)
    )

    effect = await consumer.on_order_event(envelope)

    assert effect is not None
    assert effect.params["kind"] == "order_completed"
    assert effect.params["recipient"] == OLGA.email
    assert "WHERE EXISTS (SELECT 1 FROM claim)" in effect.ctes


async def test_a_repeated_event_makes_one_letter(
    uow: FakeNotificationsUnitOfWork, contacts: FakeContacts
) -> None:
    event = order_event("cancelled")
    command = commands.letter_for_order_event(event)
    assert command is not None

    first = await commands.record_letter(command, uow, contacts)
    again = await commands.record_letter(command, uow, contacts)

    assert (first.created, again.created) == (True, False)
    assert again.notification == first.notification
    assert len(uow.letters.rows) == 1
    assert contacts.asked == [OLGA.user_id]  # the repeat found the letter before composing one


async def test_a_user_without_an_address_gets_a_letter_that_is_never_sent(
    uow: FakeNotificationsUnitOfWork, contacts: FakeContacts
) -> None:
    recorded = await commands.record_letter(letter_for(user_id=NOBODY), uow, contacts)

    assert recorded.created and recorded.notification.status == NotificationStatus.FAILED
    assert "Hello, olga!" in recorded.notification.body  # the order's username, for want of a profile
    assert await commands.take_due(10, uow) == []


async def test_users_away_stores_nothing(uow: FakeNotificationsUnitOfWork, contacts: FakeContacts) -> None:
    contacts.away = True

    with pytest.raises(ServiceUnavailable):
        await commands.record_letter(letter_for(), uow, contacts)

    assert uow.letters.rows == {} and uow.commits == 0


async def test_a_taken_letter_is_not_taken_by_another_sender_until_its_lease_runs_out(
    uow: FakeNotificationsUnitOfWork, contacts: FakeContacts
) -> None:
    stored = await stored_letters(uow, contacts, 3)

    first = await commands.take_due(2, uow)
    second = await commands.take_due(10, uow)
    meanwhile = await commands.take_due(10, uow)
    uow.letters.now += LEASE_SECONDS  # their sender died before recording them
    after_lease = await commands.take_due(10, uow)

    assert [x.notification_id for x in first] == stored[:2]
    assert [x.notification_id for x in second] == stored[2:]
    assert meanwhile == []
    assert sorted(x.notification_id for x in after_lease) == sorted(stored)


async def test_a_sent_letter_is_never_due_again(
    uow: FakeNotificationsUnitOfWork, contacts: FakeContacts
) -> None:
    (stored,) = await stored_letters(uow, contacts, 1)
    taken = await commands.take_due(10, uow)

    await commands.mark_sent([x.notification_id for x in taken], uow)
    uow.letters.now += 10 * LEASE_SECONDS

    assert await commands.take_due(10, uow) == []
    assert uow.letters.row(stored).status is NotificationStatus.SENT


async def test_a_failed_send_is_retried_later_and_the_rest_of_its_batch_is_sent(
    uow: FakeNotificationsUnitOfWork, contacts: FakeContacts
) -> None:
    failing, going = await stored_letters(uow, contacts, 2)
    taken = await commands.take_due(10, uow)

    failures = await commands.record_attempts(taken, {failing: "421 try later"}, uow)

    assert [(f.notification_id, f.attempts, f.status) for f in failures] == [
        (failing, 1, NotificationStatus.PENDING)
    ]
    assert uow.letters.row(going).status is NotificationStatus.SENT
    assert await commands.take_due(10, uow) == []  # not at once
    uow.letters.now += retry_delay(1)
    (retried,) = await commands.take_due(10, uow)
    assert (retried.notification_id, retried.attempts) == (failing, 1)


async def test_a_letter_is_given_up_after_the_last_attempt(
    uow: FakeNotificationsUnitOfWork, contacts: FakeContacts
) -> None:
    (stored,) = await stored_letters(uow, contacts, 1)
    for _ in range(MAX_ATTEMPTS):
        uow.letters.now += 10 * LEASE_SECONDS
        taken = await commands.take_due(10, uow)
        assert [x.notification_id for x in taken] == [stored]
        failures = await commands.record_attempts(taken, {stored: "550 no such mailbox"}, uow)

    assert failures[0].status is NotificationStatus.FAILED
    assert uow.letters.row(stored).last_error == "550 no such mailbox"
    uow.letters.now += 10 * LEASE_SECONDS
    assert await commands.take_due(10, uow) == []


async def test_released_letters_are_due_again_at_once_and_a_sent_one_stays_sent(
    uow: FakeNotificationsUnitOfWork, contacts: FakeContacts
) -> None:
    waiting, sent = await stored_letters(uow, contacts, 2)
    await commands.take_due(10, uow)
    await commands.mark_sent([sent], uow)

    await commands.release([waiting, sent], uow)

    assert [x.notification_id for x in await commands.take_due(10, uow)] == [waiting]
    assert uow.letters.row(sent).status is NotificationStatus.SENT


async def test_a_reader_sees_only_their_own_letters_newest_first(
    uow: FakeNotificationsUnitOfWork, contacts: FakeContacts
) -> None:
    older, newer = await stored_letters(uow, contacts, 2)
    await commands.record_letter(letter_for(user_id=NOBODY), uow, contacts)

    mine = await commands.letters_of(OLGA.user_id, 10, uow)

    assert [letter.notification_id for letter in mine] == [newer, older]


async def test_the_oldest_waiting_letter_is_measured(
    uow: FakeNotificationsUnitOfWork, contacts: FakeContacts
) -> None:
    assert await commands.oldest_waiting_seconds(uow) == 0.0
    await stored_letters(uow, contacts, 1)
    uow.letters.now += 30

    assert await commands.oldest_waiting_seconds(uow) == pytest.approx(30, abs=0.01)
