"""Letters are taken with a lease: two senders never get the same letter, and a taken letter is due
again only once its lease has run out (its sender died between sending and recording it)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

import sandwich.services.notifications as notifications_package
from sandwich.platform.db import Database
from sandwich.platform.settings import Settings
from sandwich.services.notifications.domain import NewNotification, NotificationStatus
from sandwich.services.notifications.sender import MailSender
from sandwich.services.notifications.storage import PostgresLetters
from sandwich.services.notifications.unit_of_work import sql_units_of_work
from tests.integration.scratch import scratch_database

pytestmark = pytest.mark.integration

MIGRATIONS = Path(notifications_package.__file__).parent / "migrations"


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    async with scratch_database("notifications", MIGRATIONS) as database:
        yield database


async def store_letters(db: Database, count: int) -> list[str]:
    ids = []
    async with db.begin() as conn:
        for n in range(count):
            new = NewNotification(
                notification_id=str(uuid.uuid4()),
                user_id=str(uuid.uuid4()),
                order_id=str(uuid.uuid4()),
                kind="order_paid",
                channel="email",
                recipient=f"user{n}@example.com",
                subject=f"letter {n}",
                body="hello",
                status=NotificationStatus.PENDING,
            )
            assert await PostgresLetters(conn).add(new) is not None
            ids.append(new.notification_id)
    return ids


async def test_two_senders_taking_at_once_never_share_a_letter(db: Database) -> None:
    stored = await store_letters(db, 30)

    async def take() -> list[str]:
        async with db.connect() as conn:
            return [letter.notification_id for letter in await PostgresLetters(conn).take_due(20)]

    first, second = await asyncio.gather(take(), take())

    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(stored)


async def test_a_taken_letter_is_due_again_only_after_its_lease(db: Database) -> None:
    (stored,) = await store_letters(db, 1)
    async with db.connect() as conn:
        assert [x.notification_id for x in await PostgresLetters(conn).take_due(10)] == [stored]
        assert await PostgresLetters(conn).take_due(10) == []  # leased: not due for LEASE_SECONDS
        # The lease runs out (its sender died before recording the letter as sent).
        await conn.execute(
            text(
                "UPDATE notifications SET next_attempt_at = now() - interval '1 second' WHERE notification_id = :id"
            ),
            {"id": uuid.UUID(stored)},
        )
        assert [x.notification_id for x in await PostgresLetters(conn).take_due(10)] == [stored]
        await PostgresLetters(conn).mark_sent([stored])
        await conn.execute(text("UPDATE notifications SET next_attempt_at = now() - interval '1 second'"))
        assert await PostgresLetters(conn).take_due(10) == []  # sent: never again


async def test_a_stopping_sender_hands_its_taken_letters_back_due_at_once(db: Database) -> None:
    """A graceful stop (a rolling restart) between taking letters and sending them: the letters are
    released for any other sender's next poll, instead of waiting out the lease; a letter already
    recorded as sent stays sent."""
    waiting, sent = await store_letters(db, 2)
    async with db.connect() as conn:
        taken = await PostgresLetters(conn).take_due(10)
        await PostgresLetters(conn).mark_sent([sent])
    sender = MailSender(sql_units_of_work(db), Settings())
    for letter in taken:
        sender.hand_over(letter)  # in the stopping sender's memory, not sent
    async with db.connect() as conn:
        assert await PostgresLetters(conn).take_due(10) == []  # leased

    await sender.release_handed()

    async with db.connect() as conn:
        assert [x.notification_id for x in await PostgresLetters(conn).take_due(10)] == [waiting]
