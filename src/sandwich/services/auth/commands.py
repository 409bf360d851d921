"""What auth does: register accounts (the credential here, the profile in users, the billing account
as the wiring says), log in, change roles (which retires the tokens issued before), list people for
the operations console, answer a user's token version, and keep the token signing keys.

Use cases of (command, unit of work, ports); api.py maps their errors to the contract's. Passwords
are hashed and checked outside any unit, so no connection waits on the hash.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sandwich.platform.sealing import Sealer
from sandwich.platform.tokens import SigningKey, issue_token
from sandwich.services.auth.context import AuthPorts
from sandwich.services.auth.domain import (
    Credential,
    NewAccount,
    normalized_roles,
    password_problem,
    token_claims,
)
from sandwich.services.auth.ports import ProfileNameTaken, UsersUnavailable
from sandwich.services.auth.unit_of_work import AuthUnitOfWork

ADMIN_ROLES = ["admin", "customer"]
"""The roles of the first admin, registered at start (SANDWICH_ADMIN_USERNAME)."""


class RegistrationRefused(Exception):
    """The account was not made; nothing of it stays."""


class WeakPassword(RegistrationRefused):
    """The message says why (domain.password_problem)."""


class UsernameTaken(RegistrationRefused):
    pass


class RegistrationUnavailable(RegistrationRefused):
    """users did not create the profile: away (`status` None) or answering `status`."""

    def __init__(self, status: int | None):
        super().__init__("users is away" if status is None else f"users answered {status}")
        self.status = status


class InvalidCredentials(Exception):
    """A wrong password, or no such user: the two are told apart to no one."""


class UserNotFound(Exception):
    pass


@dataclass(frozen=True)
class Account:
    user_id: str
    username: str


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int


@dataclass(frozen=True)
class UsersPage:
    items: list[Credential]
    next_after: str | None
    """The username to continue after; None on the last page."""


async def register(account: NewAccount, roles: list[str], uow: AuthUnitOfWork, ports: AuthPorts) -> Account:
    """Store the credential, then create the profile in users; undo the credential if that fails.
    Billing is told last, by the port the wiring chose (it never fails a registration)."""
    problem = password_problem(account.password)
    if problem:
        raise WeakPassword(problem)
    password_hash = await ports.passwords.hash(account.password)
    user_id = str(uuid.uuid4())
    async with uow:
        if not await uow.credentials.add(Credential(user_id, account.username, password_hash, roles, None)):
            raise UsernameTaken(account.username)
        await uow.commit()
    try:
        await ports.profiles.create(user_id, account)
    except ProfileNameTaken as exc:
        await _forget(user_id, uow)
        raise UsernameTaken(account.username) from exc
    except UsersUnavailable as exc:
        await _forget(user_id, uow)
        raise RegistrationUnavailable(exc.status) from exc
    await ports.billing_accounts.open(user_id, account.username)
    return Account(user_id, account.username)


async def _forget(user_id: str, uow: AuthUnitOfWork) -> None:
    async with uow:
        await uow.credentials.remove(user_id)
        await uow.commit()


async def log_in(
    username: str,
    password: str,
    uow: AuthUnitOfWork,
    ports: AuthPorts,
    signing_keys: list[SigningKey],
    ttl_seconds: int,
) -> IssuedToken:
    """A token signed with the newest key, carrying the user's roles and token version.
    InvalidCredentials, taking as long for an unknown user as for a wrong password."""
    async with uow.statements() as step:
        credential = await step.credentials.by_username(username)
    valid = await ports.passwords.verify(password, credential.password_hash if credential else None)
    if credential is None or not valid:
        raise InvalidCredentials(username)
    return IssuedToken(issue_token(signing_keys[0], token_claims(credential), ttl_seconds), ttl_seconds)


async def change_roles(
    username: str, roles: list[str], food_point_id: str | None, uow: AuthUnitOfWork
) -> Credential:
    """Replace a user's roles; they take effect in the tokens issued from now on, and the tokens
    issued before stop working (the token version is raised; the gateway checks it).
    InvalidRoles (before anything is read), UserNotFound."""
    roles, food_point_id = normalized_roles(roles, food_point_id)
    async with uow:
        credential = await uow.credentials.set_roles(username, roles, food_point_id)
        await uow.commit()
    if credential is None:
        raise UserNotFound(username)
    return credential


async def users_page(
    uow: AuthUnitOfWork, *, role: str | None, prefix: str | None, after: str | None, limit: int
) -> UsersPage:
    """People and their roles for the operations console, in username order: `role` keeps those
    holding it, `prefix` those whose username starts with it; `after` continues from a page's last.
    One more than `limit` is read to know whether a next page exists."""
    async with uow.statements() as step:
        found = await step.credentials.page(role=role, prefix=prefix, after=after, limit=limit + 1)
    page = found[:limit]
    return UsersPage(page, page[-1].username if len(found) > limit else None)


async def token_version(user_id: str, uow: AuthUnitOfWork) -> int:
    """The version a token of this user must carry (for the gateway). UserNotFound."""
    async with uow.statements() as step:
        version = await step.credentials.token_version(user_id)
    if version is None:
        raise UserNotFound(user_id)
    return version


async def make_admin(username: str, uow: AuthUnitOfWork) -> bool:
    """Give an existing user the admin role if they lack it (their other roles kept): True; False
    when there is no such user (the caller registers one, with ADMIN_ROLES)."""
    async with uow.statements() as step:
        existing = await step.credentials.by_username(username)
    if existing is None:
        return False
    if "admin" not in existing.roles:
        async with uow:
            await uow.credentials.set_roles(existing.username, sorted({*existing.roles, "admin"}), None)
            await uow.commit()
    return True


async def signing_keys(uow: AuthUnitOfWork, sealer: Sealer) -> list[SigningKey]:
    """The token signing keys, newest first, kept sealed in the database with a key that is not
    there (`sealer`'s); the first start makes one."""
    async with uow:
        keys = await uow.signing_keys.ensure(sealer)
        await uow.commit()
    return keys
