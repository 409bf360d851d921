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
from sandwich.services.basket.handlers import CONSUMER, concerns_basket, handle_order_event
from sandwich.services.basket.ports import MenuCatalog


def create_app() -> FastAPI:
    service = Service(
        "basket",
        title="sandwich basket",
        description="Each customer's basket, priced from the menu.",
        migrations=Path(__file__).parent / "migrations",
    )
    service.state["menu"] = MenuCatalog(service.http)
    service.consume(TOPIC_ORDER_EVENTS, CONSUMER, handle_order_event, wants=concerns_basket, kinds={"paid"})
    return service.create_app(router)
