"""Account rules: what a valid username, password and role set are."""

from __future__ import annotations

import re
from typing import Literal, get_args

RoleName = Literal["customer", "cook", "courier", "admin"]
ROLES = frozenset(get_args(RoleName))
MIN_PASSWORD_LENGTH = 8
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")


class InvalidRoles(ValueError):
    pass


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
