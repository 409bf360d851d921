"""What kitchen's routes need, made once in app.py (`service.context`): a unit of work per use, the
orders port, and the wake-up of this process's assigner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sandwich.platform.app import typed_context
from sandwich.services.kitchen.commands import Wake
from sandwich.services.kitchen.ports import OrdersPort
from sandwich.services.kitchen.unit_of_work import KitchenUnitOfWork


@dataclass(frozen=True)
class KitchenContext:
    unit_of_work: Callable[[], KitchenUnitOfWork]
    orders: OrdersPort
    wake_assigner: Wake


context_of = typed_context(KitchenContext)
"""The FastAPI dependency giving routes the KitchenContext."""
