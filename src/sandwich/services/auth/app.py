"""Wiring of auth: its units of work and ports, the signing keys loaded at start, and the first
admin from the environment."""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog
from fastapi import FastAPI

from sandwich.platform.app import Service
from sandwich.platform.sealing import Sealer, token_signing_sealing_key
from sandwich.services.auth import commands
from sandwich.services.auth.api import Registration, router
from sandwich.services.auth.context import AuthContext, AuthPorts
from sandwich.services.auth.ports import (
    AccountsOpenedFromEvents,
    AccountsOpenedOverHttp,
    BillingAccounts,
    HashedPasswords,
    ProfilesOverHttp,
)
from sandwich.services.auth.unit_of_work import SqlAuthUnitOfWork

log = structlog.get_logger("auth")


def create_app() -> FastAPI:
    service = Service(
        "auth",
        title="sandwich auth",
        description="Credentials, roles, token signing keys and the JWKS document.",
        migrations=Path(__file__).parent / "migrations",
    )
    settings = service.settings
    # With a broker, billing opens the account from users' UserCreated; in `sync` auth asks it.
    billing_accounts: BillingAccounts = (
        AccountsOpenedFromEvents() if settings.uses_broker else AccountsOpenedOverHttp(service.http)
    )
    database = service.database
    # Nothing to announce: auth records no events, so its units need no announcer.
    context = AuthContext(
        unit_of_work=lambda: SqlAuthUnitOfWork(database, None),
        ports=AuthPorts(HashedPasswords(), ProfilesOverHttp(service.http), billing_accounts),
        token_ttl_seconds=settings.token_ttl_seconds,
    )
    service.context = context

    async def load_keys() -> None:
        """The token signing keys, kept sealed in the database with a key that is not there."""
        sealer = Sealer.load(token_signing_sealing_key(settings.secrets_dir))
        context.signing_keys = await commands.signing_keys(context.unit_of_work(), sealer)

    async def bootstrap_admin() -> None:
        """Create SANDWICH_ADMIN_USERNAME once; retried in the background until users answers."""
        if not settings.admin_username or not settings.admin_password:
            return
        for attempt in range(120):
            if await commands.make_admin(settings.admin_username, context.unit_of_work()):
                return
            registration = Registration(
                username=settings.admin_username,
                password=settings.admin_password,
                email=f"{settings.admin_username}@example.com",
            )
            try:
                await commands.register(
                    registration.account(), commands.ADMIN_ROLES, context.unit_of_work(), context.ports
                )
                log.info("admin_created", username=settings.admin_username)
                return
            except commands.RegistrationRefused as exc:
                log.warning("admin_bootstrap_retry", attempt=attempt, error=str(exc))
                await asyncio.sleep(0.5)

    async def start_bootstrap() -> None:
        service.spawn(bootstrap_admin(), "bootstrap-admin")

    service.on_startup(load_keys)
    service.on_startup(start_bootstrap)
    return service.create_app(router)
