"""Wiring of kitchen: its database and unit of work, the OrderEvent consumer (broker flows), the
assigner loop and its NOTIFY listener, the context the routes get, and the routes.

In the sync flow there is no broker: orders pushes the same envelopes to the platform's
POST /internal/v1/events/order.events, which runs this very consumer behind the same inbox.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from sandwich.platform.app import Service
from sandwich.platform.db import plain_url
from sandwich.platform.events import TOPIC_ORDER_EVENTS
from sandwich.services.kitchen.api import router
from sandwich.services.kitchen.assigner import Assigner
from sandwich.services.kitchen.context import KitchenContext
from sandwich.services.kitchen.handlers import (
    CONSUMER,
    STATUSES_OF_INTEREST,
    concerns_kitchen,
    order_events_consumer,
)
from sandwich.services.kitchen.ports import HttpOrders, MenuRecipes
from sandwich.services.kitchen.unit_of_work import SqlKitchenUnitOfWork

RECIPE_CACHE_SECONDS = 60.0
ASSIGNER_INTERVAL_SECONDS = 2.0


def create_app() -> FastAPI:
    service = Service(
        "kitchen",
        title="sandwich kitchen",
        description="Food points, ingredient stock, assignment of paid orders, cooks' actions.",
        migrations=Path(__file__).parent / "migrations",
    )
    database = service.database

    def unit_of_work() -> SqlKitchenUnitOfWork:
        return SqlKitchenUnitOfWork(database)

    orders = HttpOrders(service.http)
    assigner = Assigner(
        unit_of_work,
        orders,
        MenuRecipes(service.http, ttl_seconds=RECIPE_CACHE_SECONDS),
        listen_dsn=plain_url(database.server_url, database.name),
        timeout_seconds=service.settings.assignment_timeout_seconds,
        interval_seconds=ASSIGNER_INTERVAL_SECONDS,
    )
    service.context = KitchenContext(unit_of_work=unit_of_work, orders=orders, wake_assigner=assigner.wake)
    service.consume(
        TOPIC_ORDER_EVENTS,
        CONSUMER,
        order_events_consumer(),
        wants=concerns_kitchen,
        kinds=STATUSES_OF_INTEREST,
    )

    async def start_assigner() -> None:
        service.spawn(assigner.listen(), "kitchen-assigner-listen")
        service.spawn(assigner.run(), "kitchen-assigner")

    service.on_startup(start_assigner)
    return service.create_app(router)
