"""What delivery's routes, consumer and job are given (app.py makes it once; routes get it through
`context_of`): a unit of work per use case, and the ports to kitchen and orders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sandwich.platform.app import typed_context
from sandwich.services.delivery.ports import OrderTransitions, PickupPoints
from sandwich.services.delivery.unit_of_work import DeliveryUnitOfWork


@dataclass(frozen=True)
class DeliveryContext:
    uow: Callable[[], DeliveryUnitOfWork]
    food_points: PickupPoints
    orders: OrderTransitions


context_of = typed_context(DeliveryContext)
