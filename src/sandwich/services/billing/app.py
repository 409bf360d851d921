"""Wiring of billing: its ledger database, the UserCreated consumer (broker flows), its routes."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from sandwich.platform.app import Service
from sandwich.platform.events import TOPIC_ORDERS_PENDING, TOPIC_USER_EVENTS
from sandwich.platform.settings import Flow, get_settings
from sandwich.services.billing.api import router
from sandwich.services.billing.handlers import PaymentsConsumer, open_account_for_new_user


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
    service.consume(TOPIC_USER_EVENTS, "billing", open_account_for_new_user)
    if service.settings.flow is Flow.ASYNC:
        # ADR 002: payments travel as events, orders.pending in, billing.payments out.
        service.consume(TOPIC_ORDERS_PENDING, "billing-payments", PaymentsConsumer(service).on_order_pending)
    return service.create_app(router)
