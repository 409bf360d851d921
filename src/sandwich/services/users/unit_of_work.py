"""What a use case of users reads and changes in one go: the profiles, and the events a change makes
(platform/unit_of_work.py)."""

from __future__ import annotations

from typing import Protocol

from sandwich.platform.sql import Connection
from sandwich.platform.unit_of_work import SqlUnitOfWork, UnitOfWork
from sandwich.services.users.domain import Profile


class Profiles(Protocol):
    async def add(self, profile: Profile) -> bool:
        """True when stored now; False when this user id, or this username letter case aside, has one."""
        ...

    async def by_username(self, username: str) -> Profile | None:
        """Compared without letter case, as auth compares usernames."""
        ...

    async def by_id(self, user_id: str) -> Profile | None:
        """ValueError when `user_id` is not a user id."""
        ...

    async def update(
        self, user_id: str, email: str, phone: str | None, full_name: str | None
    ) -> Profile | None: ...


class UsersUnitOfWork(UnitOfWork, Protocol):
    @property
    def profiles(self) -> Profiles: ...


class SqlUsersUnitOfWork(SqlUnitOfWork):
    profiles: Profiles

    def open_repositories(self, conn: Connection) -> None:
        from sandwich.services.users.storage import PostgresProfiles

        self.profiles = PostgresProfiles(conn)
