"""Wiring of users: its database, the outbox for UserCreated (broker flows), its routes."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from sandwich.platform.app import Service
from sandwich.services.users.api import router
from sandwich.services.users.context import UsersContext


def create_app() -> FastAPI:
    service = Service(
        "users",
        title="sandwich users",
        description="Profiles and contact data.",
        migrations=Path(__file__).parent / "migrations",
        publishes=True,
    )
    # UserCreated goes out only where a broker carries it (billing and notifications hear it there).
    service.context = UsersContext(announces_new_users=service.settings.uses_broker)
    return service.create_app(router)
