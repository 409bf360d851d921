"""The outside world as auth needs it: how billing hears of a new account.

Which one a process uses is wiring (app.py picks it from the interaction style), not a decision of
registration: with a broker, users announces UserCreated and billing opens the account from it; in
the `sync` flow (ADR 001) there is no such event, so auth asks billing itself.
"""

from __future__ import annotations

from typing import Protocol

import structlog

from sandwich.platform.http import ServiceClient, ServiceUnavailable

log = structlog.get_logger("auth")


class BillingAccounts(Protocol):
    async def open(self, user_id: str, username: str) -> None:
        """Have billing open the new user's account; never fails a registration."""


class AccountsOpenedFromEvents:
    """Broker flows: billing opens the account when it hears users' UserCreated; nothing to do here."""

    async def open(self, user_id: str, username: str) -> None:
        return None


class AccountsOpenedOverHttp:
    """`sync` flow: auth opens the billing account itself, there is no UserCreated event.

    If billing is away the registration still stands: billing opens an account on first use too.
    """

    def __init__(self, http: ServiceClient):
        self.http = http

    async def open(self, user_id: str, username: str) -> None:
        try:
            await self.http.request(
                "billing",
                "POST",
                "/internal/v1/accounts",
                json={"user_id": user_id, "username": username},
                idempotent=True,
            )
        except ServiceUnavailable as exc:
            log.warning("account_not_opened_at_registration", user_id=user_id, error=str(exc))
