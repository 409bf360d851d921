"""Account rules: what a valid username, password and role set are, and what a token says."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

RoleName = Literal["customer", "cook", "courier", "admin"]
ROLES = frozenset(get_args(RoleName))
MIN_PASSWORD_LENGTH = 8
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")


class InvalidRoles(ValueError):
    pass


@dataclass(frozen=True)
class Credential:
    """A user as auth knows them. `token_version` is raised whenever the roles change, and every
    token carries the version it was issued at, so the gateway refuses tokens issued before."""

    user_id: str
    username: str
    password_hash: str
    roles: list[str]
    food_point_id: str | None
    token_version: int = 0


@dataclass(frozen=True)
class NewAccount:
    """What a registration gives: the credential's name and password, and the profile's contact data."""

    username: str
    password: str
    email: str
    phone: str | None = None
    full_name: str | None = None


def password_problem(password: str) -> str | None:
    """Why a password is refused, or None when it is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"The password must have at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > 256:
        return "The password must have at most 256 characters."
    return None


def normalized_roles(roles: list[str], food_point_id: str | None) -> tuple[list[str], str | None]:
    """Roles to store: known ones only, `customer` always kept, a cook bound to exactly one food point."""
    unknown = set(roles) - ROLES
    if unknown:
        raise InvalidRoles(f"Unknown roles: {', '.join(sorted(unknown))}.")
    wanted = set(roles) | {"customer"}
    if "cook" in wanted and not food_point_id:
        raise InvalidRoles("A cook must be bound to a food point (food_point_id).")
    if "cook" not in wanted and food_point_id:
        raise InvalidRoles("Only a cook is bound to a food point.")
    return sorted(wanted), food_point_id


def token_claims(credential: Credential) -> dict[str, Any]:
    """What a token of `credential` says: who, their roles and token version, and a cook's food point."""
    claims: dict[str, Any] = {
        "sub": credential.user_id,
        "username": credential.username,
        "roles": credential.roles,
        "ver": credential.token_version,
    }
    if credential.food_point_id:
        claims["food_point_id"] = credential.food_point_id
    return claims
