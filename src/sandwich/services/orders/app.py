"""Wiring of orders: which adapters fill its ports (prices over HTTP, payment over HTTP or events,
changes announced through the outbox), what it consumes in `async` (order requests, payment
verdicts), its routes, and the jobs that settle payments and refunds left pending."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from prometheus_client import Gauge

from sandwich.platform.app import Service
from sandwich.platform.events import TOPIC_BILLING_PAYMENTS, TOPIC_ORDERS_CREATE
from sandwich.platform.settings import Flow
from sandwich.services.orders import storage
from sandwich.services.orders.api import router
from sandwich.services.orders.commands import OrdersContext, retry_pending_payments, retry_pending_refunds
from sandwich.services.orders.handlers import OrderRequests, PaymentVerdicts
from sandwich.services.orders.ports import HttpBasket, HttpPayments, HttpRefunds, MenuPrices

ORDERS_BY_STATUS = Gauge("orders_by_status", "Orders in each status (counted every few seconds)", ["status"])
ORDERS_BY_STATUS_SECONDS = 5.0


def create_app() -> FastAPI:
    service = Service(
        "orders",
        title="sandwich orders",
        description="Orders, their state machine and the payment step (write side).",
        migrations=Path(__file__).parent / "migrations",
        publishes=True,
    )
    ctx = OrdersContext(
        service=service,
        prices=MenuPrices(service.http),
        payments=HttpPayments(service.http),
        refunds=HttpRefunds(service.http),
        basket=HttpBasket(service.http),
    )
    service.state["orders"] = ctx

    async def settle_pending() -> None:
        await retry_pending_payments(ctx)

    async def refund_pending() -> None:
        await retry_pending_refunds(ctx)

    if service.settings.flow is Flow.ASYNC:
        # ADR 002: the gateway's OrderCreateRequested creates the order; billing's verdicts arrive as
        # events; the outbox makes sure OrderPending reaches billing. A request retried while menu or
        # basket are away is rejected after handlers.GIVE_UP_AFTER (30 s), well within 12 attempts.
        service.consume(
            TOPIC_ORDERS_CREATE,
            "orders-requests",
            OrderRequests(ctx).consumer(),
            max_attempts=12,
        )
        service.consume(TOPIC_BILLING_PAYMENTS, "orders-payments", PaymentVerdicts(ctx).on_payment_processed)
    else:
        service.every("retry-pending-payments", 1.0, settle_pending)
    service.every("retry-pending-refunds", 2.0, refund_pending)

    async def count_orders() -> None:
        async with service.database.connect() as conn:
            for status, count in (await storage.count_by_status(conn)).items():
                ORDERS_BY_STATUS.labels(status).set(count)

    service.every("orders-by-status", ORDERS_BY_STATUS_SECONDS, count_orders)
    return service.create_app(router)
