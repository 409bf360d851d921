"""Wiring of notifications: its database, the OrderEvent consumer (broker flows), the mail sender
and its routes.

A letter the consumer stores is handed to the mail sender once its statement committed, so it
leaves at once, without being looked up; the seeds' route wakes the sender to look its letter up.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from sandwich.platform.app import Service
from sandwich.platform.events import TOPIC_NOTIFICATIONS_ORDERS, TOPIC_ORDER_EVENTS
from sandwich.platform.inbox import OneStatement
from sandwich.platform.settings import Flow
from sandwich.services.notifications.api import router
from sandwich.services.notifications.context import NotificationsContext
from sandwich.services.notifications.domain import KIND_BY_STATUS
from sandwich.services.notifications.handlers import CONSUMER, OrderEventsConsumer, concerns_notifications
from sandwich.services.notifications.ports import ContactBook
from sandwich.services.notifications.sender import LETTER_WAIT_CHECK_SECONDS, MailSender
from sandwich.services.notifications.unit_of_work import sql_units_of_work


def create_app() -> FastAPI:
    service = Service(
        "notifications",
        title="sandwich notifications",
        description="Letters about orders, stored with their delivery state and sent over SMTP.",
        migrations=Path(__file__).parent / "migrations",
    )
    contacts = ContactBook(service.http, service.settings.profile_cache_ttl_seconds)
    units = sql_units_of_work(service.database)
    sender = MailSender(units, service.settings)
    service.context = NotificationsContext(unit_of_work=units, contacts=contacts, wake_sender=sender.wake)
    # ADR 002 (async) gives notifications a topic of their own; the other flows share order.events.
    topic = TOPIC_NOTIFICATIONS_ORDERS if service.settings.flow is Flow.ASYNC else TOPIC_ORDER_EVENTS
    service.consume(
        topic,
        CONSUMER,
        OneStatement(OrderEventsConsumer(contacts, sender.hand_over).on_order_event),
        wants=concerns_notifications,
        kinds=KIND_BY_STATUS,
    )
    # The sender's turn waits up to 0.2 s for a wake-up itself, so the job needs no extra sleep.
    service.every("mail-sender", 0.0, sender.run_once)
    service.every("letters-waiting", LETTER_WAIT_CHECK_SECONDS, sender.measure_waiting)
    service.on_shutdown(sender.release_handed)
    return service.create_app(router)
