"""basket's typed context: what its use cases need, made once in app.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sandwich.platform.app import typed_context
from sandwich.services.basket.ports import Menu
from sandwich.services.basket.unit_of_work import BasketUnitOfWork


@dataclass(frozen=True)
class BasketContext:
    """A new unit of work per use case, and the menu that names and prices basket lines (menu's
    internal API; a stand-in in tests)."""

    unit_of_work: Callable[[], BasketUnitOfWork]
    menu: Menu


context_of = typed_context(BasketContext)
