"""Notifications' use cases: record the letter an order's status deserves, and the sender's steps
(take due letters, record how sending went, hand taken letters back at a stop).

A letter is only stored here, as `pending`; the sender sends it after the commit, so a rolled-back
change never mails. Sending is at least once: a letter is taken with a lease, and one whose sender
died before recording it is due again when the lease runs out (same Message-ID, one copy kept).
"""

from __future__ import annotations

import uuid

from sandwich.platform.events import OrderEvent
from sandwich.services.notifications.domain import (
    CHANNEL_EMAIL,
    FailedAttempt,
    NewNotification,
    Notification,
    NotificationStatus,
    Outgoing,
    Recorded,
    RecordLetter,
    compose_letter,
    kind_for_status,
    retry_delay,
    status_after_failure,
)
from sandwich.services.notifications.ports import Contacts
from sandwich.services.notifications.unit_of_work import NotificationsUnitOfWork


def letter_for_order_event(event: OrderEvent) -> RecordLetter | None:
    """The letter an order's new status deserves, or None when it deserves none."""
    kind = kind_for_status(event.status)
    if kind is None:
        return None
    order = event.order
    return RecordLetter(order.user_id, order.order_id, kind, order.username, order.total)


async def compose(command: RecordLetter, contacts: Contacts) -> NewNotification:
    """The letter, addressed from the user's profile (cached briefly by the contact book).

    Raises ServiceUnavailable when users cannot be asked for the address."""
    contact = await contacts.contact(command.user_id)
    name = contact.greeting_name if contact else (command.username or "friend")
    letter = compose_letter(command.kind, name=name, order_id=command.order_id, total=command.total)
    recipient = contact.email if contact else None
    return NewNotification(
        notification_id=str(uuid.uuid4()),
        user_id=command.user_id,
        order_id=command.order_id,
        kind=command.kind,
        channel=CHANNEL_EMAIL,
        recipient=recipient,
        subject=letter.subject,
        body=letter.body,
        # Without an address the letter cannot go out; it is still shown in the app.
        status=NotificationStatus.PENDING if recipient else NotificationStatus.FAILED,
        last_error=None if recipient else "the user has no e-mail address on file",
    )


async def record_letter(command: RecordLetter, uow: NotificationsUnitOfWork, contacts: Contacts) -> Recorded:
    """Store the letter unless this order already has one of this kind (then that one, not created).

    Raises ServiceUnavailable when users cannot be asked for the address: nothing is stored."""
    async with uow:
        recorded = await _record(command, uow, contacts)
        await uow.commit()
    return recorded


async def _record(command: RecordLetter, uow: NotificationsUnitOfWork, contacts: Contacts) -> Recorded:
    if command.order_id is not None:
        existing = await uow.letters.find(command.order_id, command.kind)
        if existing is not None:
            return Recorded(existing, created=False)
    stored = await uow.letters.add(await compose(command, contacts))
    if stored is not None:
        return Recorded(stored, created=True)
    assert command.order_id is not None  # only the (order_id, kind) key can refuse an insert
    existing = await uow.letters.find(command.order_id, command.kind)
    assert existing is not None
    return Recorded(existing, created=False)


async def letters_of(user_id: str, limit: int, uow: NotificationsUnitOfWork) -> list[Notification]:
    """The user's own letters, newest first (one statement: a unit with `atomic=False`)."""
    async with uow:
        return await uow.letters.of_user(user_id, limit)


async def take_due(limit: int, uow: NotificationsUnitOfWork) -> list[Outgoing]:
    """Due letters, taken with a lease so no other sender takes them meanwhile (one statement)."""
    async with uow:
        letters = await uow.letters.take_due(limit)
        await uow.commit()
    return letters


async def mark_sent(notification_ids: list[str], uow: NotificationsUnitOfWork) -> None:
    """A batch that all went out (one statement)."""
    async with uow:
        await uow.letters.mark_sent(notification_ids)
        await uow.commit()


async def record_attempts(
    letters: list[Outgoing], errors: dict[str, str], uow: NotificationsUnitOfWork
) -> list[FailedAttempt]:
    """A batch some of which did not go out (`errors` by notification id): the rest marked sent,
    each failed one retried later (longer after every failure) or, past the last attempt, given up.
    One transaction; the failures are returned for the sender's log."""
    sent = [letter.notification_id for letter in letters if letter.notification_id not in errors]
    failures: list[FailedAttempt] = []
    async with uow:
        await uow.letters.mark_sent(sent)
        for letter in letters:
            error = errors.get(letter.notification_id)
            if error is None:
                continue
            attempts = letter.attempts + 1
            status = status_after_failure(attempts)
            await uow.letters.mark_failed(letter.notification_id, error, status, retry_delay(attempts))
            failures.append(FailedAttempt(letter.notification_id, attempts, status, error))
        await uow.commit()
    return failures


async def release(notification_ids: list[str], uow: NotificationsUnitOfWork) -> None:
    """Hand taken but unsent letters back, due at once (a graceful stop; one statement)."""
    async with uow:
        await uow.letters.release(notification_ids)
        await uow.commit()


async def oldest_waiting_seconds(uow: NotificationsUnitOfWork) -> float:
    """How long the oldest letter not yet sent has waited (0 when none waits)."""
    async with uow:
        return await uow.letters.oldest_pending_seconds()
