"""The consumer of order events: a letter for the statuses that deserve one, by the same rules as the
sync flow's POST /api/v1/notification (commands.py).

The letter is stored, as `pending`, in ONE statement with the inbox claim (an inbox Effect): this is
the service's hot path, and a unit of work around it would add BEGIN, COMMIT and a look-up, so only
the letter is written by the use cases' rules (`commands.letter_for_order_event`, `commands.compose`)
and the insert stays `storage.insert_effect`. A rolled-back event never mails: the sender gets the
letter once the statement committed.
"""

from __future__ import annotations

from collections.abc import Callable

from sandwich.platform.events import (
    ORDER_EVENT,
    ORDER_UPDATE_MESSAGE,
    Envelope,
    OrderEvent,
    carries_order_status,
)
from sandwich.platform.inbox import Effect
from sandwich.services.notifications import commands, storage
from sandwich.services.notifications.domain import KIND_BY_STATUS, Outgoing
from sandwich.services.notifications.ports import Contacts

CONSUMER = "notifications"


def concerns_notifications(envelope: Envelope) -> bool:
    """The relevance test run before the inbox: only the statuses that deserve a letter."""
    return carries_order_status(envelope, KIND_BY_STATUS, types=(ORDER_EVENT, ORDER_UPDATE_MESSAGE))


class OrderEventsConsumer:
    """Turns "this order reached that status" into at most one stored letter per (order, kind)."""

    def __init__(self, contacts: Contacts, hand_over: Callable[[Outgoing], None]):
        self.contacts = contacts
        # The mail sender: a letter the consumer stored goes to it once committed, without a look-up.
        self.hand_over = hand_over

    async def on_order_event(self, envelope: Envelope) -> Effect | None:
        """Consumer of `order.events`: a letter for the statuses that deserve one, nothing otherwise.

        One statement with the inbox claim; the (order_id, kind) key keeps a second letter of a kind
        out even when the same status arrives under another event id. Raises ServiceUnavailable when
        users cannot be asked for the address: the bus retries the event.
        """
        if envelope.type not in (ORDER_EVENT, ORDER_UPDATE_MESSAGE):
            return None
        command = commands.letter_for_order_event(OrderEvent.model_validate(envelope.payload))
        if command is None:
            return None
        return storage.insert_effect(await commands.compose(command, self.contacts), self.hand_over)
