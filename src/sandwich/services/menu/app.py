"""Wiring of menu: its database and routes; it neither publishes nor consumes events."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from sandwich.platform.app import Service
from sandwich.services.menu.api import router
from sandwich.services.menu.context import MenuContext
from sandwich.services.menu.unit_of_work import SqlMenuUnitOfWork


def create_app() -> FastAPI:
    service = Service(
        "menu",
        title="sandwich menu",
        description="Menu items, prices in kopecks and recipes.",
        migrations=Path(__file__).parent / "migrations",
        publishes=False,
    )
    database = service.database
    # Nothing to announce: menu records no events, so its units need no announcer.
    service.context = MenuContext(unit_of_work=lambda: SqlMenuUnitOfWork(database, None))
    return service.create_app(router)
