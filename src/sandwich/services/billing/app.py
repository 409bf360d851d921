"""Wiring of billing: its ledger database, the UserCreated consumer (broker flows), its routes."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from sandwich.platform.app import Service
from sandwich.platform.events import TOPIC_USER_EVENTS
from sandwich.services.billing.api import router
from sandwich.services.billing.handlers import open_account_for_new_user


def create_app() -> FastAPI:
    service = Service(
        "billing",
        title="sandwich billing",
        description="Accounts and an append-only ledger; payments refuse to overdraw (406).",
        migrations=Path(__file__).parent / "migrations",
    )
    service.consume(TOPIC_USER_EVENTS, "billing", open_account_for_new_user)
    return service.create_app(router)
