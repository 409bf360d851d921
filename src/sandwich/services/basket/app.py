"""Wiring of basket: its database, the menu it prices from, the OrderEvent consumer (broker flows)
and its routes.

In the sync flow there is no broker: orders pushes the same envelopes to the platform's
POST /internal/v1/events/order.events, which runs this very consumer behind the same inbox.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from sandwich.platform.app import Service
from sandwich.platform.events import TOPIC_ORDER_EVENTS
from sandwich.services.basket.api import router
from sandwich.services.basket.context import BasketContext
from sandwich.services.basket.handlers import CONSUMER, PaidOrdersConsumer, concerns_basket
from sandwich.services.basket.ports import MenuCatalog
from sandwich.services.basket.unit_of_work import SqlBasketUnitOfWork


def create_app() -> FastAPI:
    service = Service(
        "basket",
        title="sandwich basket",
        description="Each customer's basket, priced from the menu.",
        migrations=Path(__file__).parent / "migrations",
    )
    database = service.database
    service.context = BasketContext(
        unit_of_work=lambda: SqlBasketUnitOfWork(database, service.announce_committed),
        menu=MenuCatalog(service.http),
    )
    consumer = PaidOrdersConsumer()
    service.consume(
        TOPIC_ORDER_EVENTS, CONSUMER, consumer.on_order_event, wants=concerns_basket, kinds={"paid"}
    )
    return service.create_app(router)
