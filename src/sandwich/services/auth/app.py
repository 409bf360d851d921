"""Wiring of auth: signing keys loaded at start, and the first admin from the environment."""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog
from fastapi import FastAPI

from sandwich.platform.app import Service
from sandwich.platform.errors import ApiError
from sandwich.platform.sealing import Sealer, token_signing_sealing_key
from sandwich.services.auth import storage
from sandwich.services.auth.api import Registration, register_user, router
from sandwich.services.auth.context import AuthContext
from sandwich.services.auth.ports import AccountsOpenedFromEvents, AccountsOpenedOverHttp, BillingAccounts

log = structlog.get_logger("auth")


def create_app() -> FastAPI:
    service = Service(
        "auth",
        title="sandwich auth",
        description="Credentials, roles, token signing keys and the JWKS document.",
        migrations=Path(__file__).parent / "migrations",
    )
    # With a broker, billing opens the account from users' UserCreated; in `sync` auth asks it.
    billing_accounts: BillingAccounts = (
        AccountsOpenedFromEvents() if service.settings.uses_broker else AccountsOpenedOverHttp(service.http)
    )
    context = AuthContext(billing_accounts)
    service.context = context

    async def load_keys() -> None:
        """The token signing keys, kept sealed in the database with a key that is not there."""
        sealer = Sealer.load(token_signing_sealing_key(service.settings.secrets_dir))
        async with service.database.begin() as conn:
            context.signing_keys = await storage.ensure_signing_key(conn, sealer)

    async def bootstrap_admin() -> None:
        """Create SANDWICH_ADMIN_USERNAME once; retried in the background until users answers."""
        settings = service.settings
        if not settings.admin_username or not settings.admin_password:
            return
        for attempt in range(120):
            async with service.database.connect() as conn:
                existing = await storage.credential_by_username(conn, settings.admin_username)
            if existing is not None:
                if "admin" not in existing.roles:
                    async with service.database.begin() as conn:
                        await storage.set_roles(
                            conn, existing.username, sorted({*existing.roles, "admin"}), None
                        )
                return
            registration = Registration(
                username=settings.admin_username,
                password=settings.admin_password,
                email=f"{settings.admin_username}@example.com",
            )
            try:
                await register_user(service, context, registration, ["admin", "customer"])
                log.info("admin_created", username=settings.admin_username)
                return
            except ApiError as exc:
                log.warning("admin_bootstrap_retry", attempt=attempt, error=exc.message)
                await asyncio.sleep(0.5)

    async def start_bootstrap() -> None:
        service.spawn(bootstrap_admin(), "bootstrap-admin")

    service.on_startup(load_keys)
    service.on_startup(start_bootstrap)
    return service.create_app(router)
