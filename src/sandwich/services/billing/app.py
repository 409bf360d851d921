"""Wiring of billing: its ledger database, the UserCreated consumer (broker flows), its routes, and
in the async flow the OrderPending consumer that charges orders (ADR 002)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from sandwich.platform.app import Service
from sandwich.platform.events import TOPIC_ORDERS_PENDING, TOPIC_USER_EVENTS
from sandwich.platform.settings import Flow, get_settings
from sandwich.services.billing.api import router
from sandwich.services.billing.context import BillingContext
from sandwich.services.billing.faults import InjectedDelay
from sandwich.services.billing.handlers import PaymentsConsumer, on_user_event
from sandwich.services.billing.unit_of_work import sql_units_of_work


def service_flow() -> Flow:
    return get_settings().flow


def create_app() -> FastAPI:
    service = Service(
        "billing",
        title="sandwich billing",
        description="Accounts and an append-only ledger; payments refuse to overdraw (406).",
        migrations=Path(__file__).parent / "migrations",
        publishes=service_flow() is Flow.ASYNC,
    )
    context = BillingContext(
        unit_of_work=sql_units_of_work(service.database, service.announce_committed),
        envelopes=service.envelope,
        injected_delay=InjectedDelay(service.name, service.settings.fault_delay_ms),
    )
    service.context = context
    service.consume(TOPIC_USER_EVENTS, "billing", on_user_event)
    if service.settings.flow is Flow.ASYNC:
        # ADR 002: payments travel as events, orders.pending in, billing.payments out.
        payments = PaymentsConsumer(context)
        service.consume(TOPIC_ORDERS_PENDING, "billing-payments", payments.on_order_pending)
    return service.create_app(router)
