"""The outside world as auth needs it: password hashing, the profile users keeps for every account,
and how billing hears of a new account.

Which billing port a process uses is wiring (app.py picks it from the interaction style), not a
decision of registration: with a broker, users announces UserCreated and billing opens the account
from it; in the `sync` flow (ADR 001) there is no such event, so auth asks billing itself.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import structlog
from pwdlib import PasswordHash

from sandwich.platform.http import ServiceClient, ServiceUnavailable
from sandwich.services.auth.domain import NewAccount

log = structlog.get_logger("auth")


class Passwords(Protocol):
    async def hash(self, password: str) -> str: ...

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Whether `password` is the one of `password_hash`; None (no such user) is never right,
        but costs as much time as a wrong password, so a miss does not tell that the name is free."""
        ...


class HashedPasswords:
    """pwdlib's recommended hash (Argon2), computed in a thread so the event loop goes on serving."""

    def __init__(self) -> None:
        self.hasher = PasswordHash.recommended()
        # Verified against when the username is unknown, so a miss costs as much as a wrong password.
        self._dummy_hash = self.hasher.hash("not-a-real-password")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        stored = password_hash if password_hash is not None else self._dummy_hash
        valid = await asyncio.to_thread(self.hasher.verify, password, stored)
        return valid and password_hash is not None


class ProfileNameTaken(Exception):
    """users has a profile of this username (letter case aside) for another user."""


class UsersUnavailable(Exception):
    """users did not create the profile: away (`status` None) or answering `status`."""

    def __init__(self, status: int | None):
        super().__init__("users is away" if status is None else f"users answered {status}")
        self.status = status


class Profiles(Protocol):
    async def create(self, user_id: str, account: NewAccount) -> None:
        """Have users create the new user's profile (ADR 003: it exists when register answers);
        repeating it is harmless. ProfileNameTaken, UsersUnavailable."""


class ProfilesOverHttp:
    """users' POST /api/v1/user."""

    def __init__(self, http: ServiceClient):
        self.http = http

    async def create(self, user_id: str, account: NewAccount) -> None:
        profile = {
            "user_id": user_id,
            "username": account.username,
            "email": account.email,
            "phone": account.phone,
            "full_name": account.full_name,
        }
        try:
            answer = await self.http.request("users", "POST", "/api/v1/user", json=profile, idempotent=True)
        except ServiceUnavailable as exc:
            raise UsersUnavailable(None) from exc
        if answer.status == 409:
            raise ProfileNameTaken(account.username)
        if not answer.ok:
            raise UsersUnavailable(answer.status)


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
