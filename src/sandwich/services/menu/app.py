"""Wiring of menu: its database and routes; it neither publishes nor consumes events."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from sandwich.platform.app import Service
from sandwich.services.menu.api import router


def create_app() -> FastAPI:
    service = Service(
        "menu",
        title="sandwich menu",
        description="Menu items, prices in kopecks and recipes.",
        migrations=Path(__file__).parent / "migrations",
        publishes=False,
    )
    return service.create_app(router)
