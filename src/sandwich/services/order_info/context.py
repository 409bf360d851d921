"""What order_info's routes are given (app.py makes it once; routes get it through `context_of`): a
unit of work per request, orders' copy for the read model's gaps, and the process's live listener."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sandwich.platform.app import typed_context
from sandwich.services.order_info.live import LiveOrders
from sandwich.services.order_info.ports import WriteSide
from sandwich.services.order_info.unit_of_work import OrderInfoUnitOfWork


@dataclass(frozen=True)
class OrderInfoContext:
    uow: Callable[[], OrderInfoUnitOfWork]
    orders: WriteSide
    live: LiveOrders


context_of = typed_context(OrderInfoContext)
