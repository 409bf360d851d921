"""menu's typed context: what its routes and use cases are given, made once in app.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sandwich.platform.app import typed_context
from sandwich.services.menu.unit_of_work import MenuUnitOfWork


@dataclass(frozen=True)
class MenuContext:
    """A new unit of work per use case; menu calls no other service, so it has no ports."""

    unit_of_work: Callable[[], MenuUnitOfWork]


context_of = typed_context(MenuContext)
