"""Wiring of users: its database, the outbox for UserCreated (broker flows), its routes."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from sandwich.platform.app import Service
from sandwich.platform.events import TOPIC_USER_EVENTS, USER_CREATED, UserCreated
from sandwich.platform.outbox import Event
from sandwich.services.users.api import router
from sandwich.services.users.context import UsersContext
from sandwich.services.users.domain import Profile
from sandwich.services.users.unit_of_work import SqlUsersUnitOfWork


def create_app() -> FastAPI:
    service = Service(
        "users",
        title="sandwich users",
        description="Profiles and contact data.",
        migrations=Path(__file__).parent / "migrations",
        publishes=True,
    )
    announces = service.settings.uses_broker

    def new_user_events(profile: Profile) -> list[Event]:
        """UserCreated, only where a broker carries it (billing and notifications hear it there)."""
        if not announces:
            return []
        event = UserCreated(user_id=profile.user_id, username=profile.username, email=profile.email)
        return [Event(TOPIC_USER_EVENTS, service.envelope(USER_CREATED, profile.user_id, event.model_dump()))]

    def unit_of_work() -> SqlUsersUnitOfWork:
        return SqlUsersUnitOfWork(service.database, service.announce_committed)

    service.context = UsersContext(unit_of_work=unit_of_work, announce_new_user=new_user_events)
    return service.create_app(router)
