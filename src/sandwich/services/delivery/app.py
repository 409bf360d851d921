"""Wiring of delivery: its database, the OrderEvent consumer (broker flows), kitchen and orders over
HTTP, the job that fills in pickup points kitchen could not tell at once, and the routes.

In the sync flow there is no broker: orders pushes the same envelopes to the platform's
POST /internal/v1/events/order.events, which runs this very consumer behind the same inbox.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from sandwich.platform.app import Service
from sandwich.platform.events import TOPIC_ORDER_EVENTS
from sandwich.services.delivery.api import router
from sandwich.services.delivery.commands import fill_missing_pickups
from sandwich.services.delivery.context import DeliveryContext
from sandwich.services.delivery.domain import TRACKED_STATUSES
from sandwich.services.delivery.handlers import CONSUMER, OrderEventHandler, concerns_delivery
from sandwich.services.delivery.ports import FoodPoints, Orders
from sandwich.services.delivery.unit_of_work import SqlDeliveryUnitOfWork

PICKUP_FILL_SECONDS = 15.0


def create_app() -> FastAPI:
    service = Service(
        "delivery",
        title="sandwich delivery",
        description="Couriers: the ready orders nearest first, taking one (exactly one courier wins), completing it.",
        migrations=Path(__file__).parent / "migrations",
    )
    database = service.database
    food_points = FoodPoints(service.http)
    ctx = DeliveryContext(
        # Delivery announces nothing (orders does), so its units have nothing to hand on.
        uow=lambda: SqlDeliveryUnitOfWork(database, None),
        food_points=food_points,
        orders=Orders(service.http),
    )
    service.context = ctx
    service.consume(
        TOPIC_ORDER_EVENTS,
        CONSUMER,
        OrderEventHandler(food_points),
        wants=concerns_delivery,
        kinds=TRACKED_STATUSES,
    )

    async def fill_pickups() -> None:
        await fill_missing_pickups(ctx.uow(), ctx.food_points)

    service.every("fill-missing-pickups", PICKUP_FILL_SECONDS, fill_pickups)
    return service.create_app(router)
