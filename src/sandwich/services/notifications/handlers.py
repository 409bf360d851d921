"""Recording notifications: from OrderEvents on `order.events` (broker flows) and from the sync flow's
POST /api/v1/notification, by the same rules.

A notification is only stored here, as `pending`, in the caller's transaction (for events: together
with the inbox claim). The sender sends it after the commit, so a rolled-back event never mails.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandwich.platform.events import (
    ORDER_EVENT,
    ORDER_UPDATE_MESSAGE,
    Envelope,
    OrderEvent,
    carries_order_status,
)
from sandwich.platform.inbox import Effect
from sandwich.platform.sql import Connection
from sandwich.services.notifications import storage
from sandwich.services.notifications.contacts import ContactBook
from sandwich.services.notifications.domain import (
    CHANNEL_EMAIL,
    KIND_BY_STATUS,
    NotificationStatus,
    compose_letter,
    kind_for_status,
)

CONSUMER = "notifications"


def concerns_notifications(envelope: Envelope) -> bool:
    """The relevance test run before the inbox: only the statuses that deserve a letter."""
    return carries_order_status(envelope, KIND_BY_STATUS, types=(ORDER_EVENT, ORDER_UPDATE_MESSAGE))


@dataclass(frozen=True)
class Recorded:
    notification: dict[str, Any]
    created: bool


class Notifier:
    """Turns "this order reached that status" into at most one stored letter per (order, kind)."""

    def __init__(
        self,
        contacts: ContactBook,
        hand_over: Callable[[storage.Outgoing], None] | None = None,
        wake_sender: Callable[[], None] | None = None,
    ):
        self.contacts = contacts
        # The mail sender: a letter the consumer stored goes to it once committed (hand_over); one
        # stored by the seeds' route is looked up after a wake-up.
        self.hand_over = hand_over or (lambda letter: None)
        self.wake_sender = wake_sender or (lambda: None)

    async def record(
        self,
        conn: Connection,
        *,
        user_id: str,
        order_id: str | None,
        kind: str,
        username: str | None,
        total: int | None,
    ) -> Recorded:
        """Store the letter unless this order already has one of this kind.

        Raises ServiceUnavailable when users cannot be asked for the address.
        """
        if order_id is not None:
            existing = await storage.find(conn, order_id, kind)
            if existing is not None:
                return Recorded(existing, created=False)
        new = await self.compose(
            user_id=user_id, order_id=order_id, kind=kind, username=username, total=total
        )
        stored = await storage.insert(conn, new)
        if stored is not None:
            return Recorded(stored, created=True)
        assert order_id is not None  # only the (order_id, kind) key can refuse an insert
        existing = await storage.find(conn, order_id, kind)
        assert existing is not None
        return Recorded(existing, created=False)

    async def compose(
        self, *, user_id: str, order_id: str | None, kind: str, username: str | None, total: int | None
    ) -> storage.NewNotification:
        """The letter, addressed from the user's profile (cached briefly by the contact book)."""
        contact = await self.contacts.contact(user_id)
        name = contact.greeting_name if contact else (username or "friend")
        letter = compose_letter(kind, name=name, order_id=order_id, total=total)
        recipient = contact.email if contact else None
        return storage.NewNotification(
            notification_id=str(uuid.uuid4()),
            user_id=user_id,
            order_id=order_id,
            kind=kind,
            channel=CHANNEL_EMAIL,
            recipient=recipient,
            subject=letter.subject,
            body=letter.body,
            # Without an address the letter cannot go out; it is still shown in the app.
            status=NotificationStatus.PENDING if recipient else NotificationStatus.FAILED,
            last_error=None if recipient else "the user has no e-mail address on file",
        )

    async def on_order_event(self, envelope: Envelope) -> Effect | None:
        """Consumer of `order.events`: a letter for the statuses that deserve one, nothing otherwise.

        One statement with the inbox claim; the (order_id, kind) key keeps a second letter of a kind
        out even when the same status arrives under another event id. Raises ServiceUnavailable when
        users cannot be asked for the address: the bus retries the event.
        """
        if envelope.type not in (ORDER_EVENT, ORDER_UPDATE_MESSAGE):
            return None
        event = OrderEvent.model_validate(envelope.payload)
        kind = kind_for_status(event.status)
        if kind is None:
            return None
        order = event.order
        new = await self.compose(
            user_id=order.user_id,
            order_id=order.order_id,
            kind=kind,
            username=order.username,
            total=order.total,
        )
        return storage.insert_effect(new, self.hand_over)
