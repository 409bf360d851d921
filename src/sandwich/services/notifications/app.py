"""Wiring of notifications: its database, the OrderEvent consumer (broker flows), the mail sender
and its routes.

The platform calls `events_committed` after every commit of a consumed event; here that also wakes
the mail sender, so a letter stored by the consumer leaves at once instead of at the next poll.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from sandwich.platform.app import Service
from sandwich.platform.events import TOPIC_NOTIFICATIONS_ORDERS, TOPIC_ORDER_EVENTS
from sandwich.platform.inbox import OneStatement
from sandwich.platform.settings import Flow
from sandwich.services.notifications.api import router
from sandwich.services.notifications.contacts import ContactBook
from sandwich.services.notifications.domain import KIND_BY_STATUS
from sandwich.services.notifications.handlers import CONSUMER, Notifier, concerns_notifications
from sandwich.services.notifications.sender import MailSender


class NotificationsService(Service):
    """The platform's Service whose after-commit hook also wakes the mail sender."""

    sender: MailSender | None = None

    def events_committed(self) -> None:
        super().events_committed()
        if self.sender is not None:
            self.sender.wake()


def create_app() -> FastAPI:
    service = NotificationsService(
        "notifications",
        title="sandwich notifications",
        description="Letters about orders, stored with their delivery state and sent over SMTP.",
        migrations=Path(__file__).parent / "migrations",
    )
    contacts = ContactBook(service.http, service.settings.profile_cache_ttl_seconds)
    notifier = Notifier(contacts)
    service.sender = MailSender(service.database, service.settings)
    # ADR 002 (async) gives notifications a topic of their own; the other flows share order.events.
    topic = TOPIC_NOTIFICATIONS_ORDERS if service.settings.flow is Flow.ASYNC else TOPIC_ORDER_EVENTS
    service.consume(
        topic,
        CONSUMER,
        OneStatement(notifier.on_order_event),
        wants=concerns_notifications,
        kinds=KIND_BY_STATUS,
    )
    # The sender's turn waits up to 0.2 s for a wake-up itself, so the job needs no extra sleep.
    service.every("mail-sender", 0.0, service.sender.run_once)
    app = service.create_app(router)
    app.state.notifier = notifier
    return app
