"""Profile rules: who may see a profile, and what a profile holds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    user_id: str
    username: str
    email: str
    phone: str | None
    full_name: str | None

    def public(self) -> dict[str, str | None]:
        return {
            "user_id": self.user_id,
            "username": self.username,
            "email": self.email,
            "phone": self.phone,
            "full_name": self.full_name,
        }


def may_read_profile(caller_username: str, caller_roles: frozenset[str], username: str) -> bool:
    """A profile is visible to its owner (usernames compared without letter case), to admins, and to
    services (role `service`, never a client's)."""
    return caller_username.lower() == username.lower() or bool(caller_roles & {"admin", "service"})
