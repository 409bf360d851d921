"""Wiring of users: its database, the outbox for UserCreated (broker flows), its routes."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from sandwich.platform.app import Service
from sandwich.services.users.api import router


def create_app() -> FastAPI:
    service = Service(
        "users",
        title="sandwich users",
        description="Profiles and contact data.",
        migrations=Path(__file__).parent / "migrations",
        publishes=True,
    )
    return service.create_app(router)
