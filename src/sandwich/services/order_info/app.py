"""Wiring of order_info: its read-model database, the OrderEvent consumer (broker flows), the listener
of the live event streams, and routes.

In the sync flow there is no broker: orders pushes the same envelopes to the platform's
POST /internal/v1/events/order.events, which runs this very consumer behind the same inbox.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from sandwich.platform.app import Service
from sandwich.platform.db import plain_url
from sandwich.platform.events import TOPIC_ORDER_EVENTS
from sandwich.platform.inbox import OneStatement
from sandwich.services.order_info.api import router
from sandwich.services.order_info.context import OrderInfoContext
from sandwich.services.order_info.handlers import CONSUMER, order_event_effect
from sandwich.services.order_info.live import LiveOrders
from sandwich.services.order_info.ports import OrdersCopy
from sandwich.services.order_info.unit_of_work import SqlOrderInfoUnitOfWork


def create_app() -> FastAPI:
    service = Service(
        "order_info",
        title="sandwich order_info",
        description="The read model of orders with their history (CQRS query side).",
        migrations=Path(__file__).parent / "migrations",
    )
    service.consume(TOPIC_ORDER_EVENTS, CONSUMER, OneStatement(order_event_effect))
    database = service.database
    service.context = OrderInfoContext(
        # order_info records no events (it only listens), so its units have nothing to hand on.
        uow=lambda: SqlOrderInfoUnitOfWork(database, None),
        orders=OrdersCopy(service.http),
        # One LISTEN connection per process for the live event streams, opened by the first stream.
        live=LiveOrders(plain_url(database.server_url, database.name), spawn=service.spawn),
    )
    return service.create_app(router)
