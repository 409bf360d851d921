"""What notifications' use cases and routes are given, made once in app.py: the unit of work to
open, the contact book, and the mail sender's wake-up. Never the platform itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sandwich.platform.app import typed_context
from sandwich.services.notifications.ports import Contacts
from sandwich.services.notifications.unit_of_work import UnitsOfWork


@dataclass(frozen=True)
class NotificationsContext:
    unit_of_work: UnitsOfWork
    contacts: Contacts
    wake_sender: Callable[[], None]
    """After a commit that stored a letter: the sender looks it up now, not at its next poll."""


context_of = typed_context(NotificationsContext)
