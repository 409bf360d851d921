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
from sandwich.platform.sql import Connection
from sandwich.services.orders.api import router
from sandwich.services.orders.commands import retry_pending_payments, retry_pending_refunds
from sandwich.services.orders.context import OrdersContext, OrdersPorts
from sandwich.services.orders.handlers import OrderRequests, PaymentVerdicts
from sandwich.services.orders.ports import (
    HttpBasket,
    HttpPayments,
    HttpRefunds,
    MenuPrices,
    OrderAnnouncements,
    Payments,
    PaymentsByEvents,
)
from sandwich.services.orders.unit_of_work import SqlOrdersUnitOfWork

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
    by_events = service.settings.flow is Flow.ASYNC
    # ADR 002 (async): billing is asked to pay by the order's OrderPending event and answers by one,
    # and notifications hear of orders on their own topic; the HTTP flows pay over HTTP now.
    payments: Payments = PaymentsByEvents() if by_events else HttpPayments(service.http)
    ports = OrdersPorts(
        prices=MenuPrices(service.http),
        payments=payments,
        refunds=HttpRefunds(service.http),
        basket=HttpBasket(service.http),
        announcements=OrderAnnouncements(
            service.envelope, notifications_topic=by_events, pending_to_billing=by_events
        ),
        spawn=service.spawn,
        payment_retry_after_seconds=service.settings.payment_retry_after_seconds,
    )

    def unit_of_work() -> SqlOrdersUnitOfWork:
        return SqlOrdersUnitOfWork(service.database, service.announce_committed)

    def unit_of_work_in(conn: Connection) -> SqlOrdersUnitOfWork:
        return SqlOrdersUnitOfWork.joining(conn)

    ctx = OrdersContext(unit_of_work=unit_of_work, unit_of_work_in=unit_of_work_in, ports=ports)
    service.context = ctx

    async def settle_pending() -> None:
        await retry_pending_payments(ctx.unit_of_work(), ports)

    async def refund_pending() -> None:
        await retry_pending_refunds(ctx.unit_of_work(), ports)

    if by_events:
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
        async with ctx.unit_of_work().statements() as uow:
            for status, count in (await uow.orders.count_by_status()).items():
                ORDERS_BY_STATUS.labels(status).set(count)

    service.every("orders-by-status", ORDERS_BY_STATUS_SECONDS, count_orders)
    return service.create_app(router)
