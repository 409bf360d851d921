"""Wiring of kitchen: its database, the OrderEvent consumer (broker flows), the assigner loop and its
NOTIFY listener, and the routes.

In the sync flow there is no broker: orders pushes the same envelopes to the platform's
POST /internal/v1/events/order.events, which runs this very consumer behind the same inbox.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from sandwich.platform.app import Service
from sandwich.platform.events import TOPIC_ORDER_EVENTS
from sandwich.services.kitchen.api import KitchenContext, router
from sandwich.services.kitchen.assigner import Assigner
from sandwich.services.kitchen.handlers import (
    CONSUMER,
    ORDER_EVENTS_CONSUMER,
    STATUSES_OF_INTEREST,
    concerns_kitchen,
)
from sandwich.services.kitchen.ports import HttpOrders, MenuRecipes

RECIPE_CACHE_SECONDS = 60.0
ASSIGNER_INTERVAL_SECONDS = 2.0


def create_app() -> FastAPI:
    service = Service(
        "kitchen",
        title="sandwich kitchen",
        description="Food points, ingredient stock, assignment of paid orders, cooks' actions.",
        migrations=Path(__file__).parent / "migrations",
    )
    orders = HttpOrders(service.http)
    assigner = Assigner(
        service.database,
        orders,
        MenuRecipes(service.http, ttl_seconds=RECIPE_CACHE_SECONDS),
        timeout_seconds=service.settings.assignment_timeout_seconds,
        interval_seconds=ASSIGNER_INTERVAL_SECONDS,
    )
    service.state["kitchen"] = KitchenContext(service=service, assigner=assigner, orders=orders)
    service.consume(
        TOPIC_ORDER_EVENTS,
        CONSUMER,
        ORDER_EVENTS_CONSUMER,
        wants=concerns_kitchen,
        kinds=STATUSES_OF_INTEREST,
    )

    async def start_assigner() -> None:
        service.spawn(assigner.listen(), "kitchen-assigner-listen")
        service.spawn(assigner.run(), "kitchen-assigner")

    service.on_startup(start_assigner)
    return service.create_app(router)
