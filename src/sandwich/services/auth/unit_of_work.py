"""What a use case of auth reads and changes in one go: the credentials and the token signing keys
(platform/unit_of_work.py).

Auth announces no events (users announces a new user); its unit is the transaction of a change, or,
for a read, one statement on its own (`statements()`).
"""

from __future__ import annotations

from typing import Protocol

from sandwich.platform.sealing import Sealer
from sandwich.platform.sql import Connection
from sandwich.platform.tokens import SigningKey
from sandwich.platform.unit_of_work import SqlUnitOfWork, UnitOfWork
from sandwich.services.auth.domain import Credential
from sandwich.services.auth.storage import PostgresCredentials, PostgresSigningKeys


class Credentials(Protocol):
    async def add(self, credential: Credential) -> bool:
        """True when stored; False (nothing written) when the username, letter case aside, is taken."""
        ...

    async def remove(self, user_id: str) -> None: ...

    async def by_username(self, username: str) -> Credential | None:
        """Compared without letter case (`ALICE` finds `alice`)."""
        ...

    async def set_roles(
        self, username: str, roles: list[str], food_point_id: str | None
    ) -> Credential | None:
        """The credential with its new roles and its token version raised; None for an unknown user."""
        ...

    async def page(
        self, *, role: str | None, prefix: str | None, after: str | None, limit: int
    ) -> list[Credential]:
        """Up to `limit`, in username order without letter case, after `after`; only those holding
        `role` and whose username starts with `prefix` (letter case aside), when given."""
        ...

    async def token_version(self, user_id: str) -> int | None:
        """None when there is no such user (or `user_id` is not a user id)."""
        ...


class SigningKeys(Protocol):
    async def ensure(self, sealer: Sealer) -> list[SigningKey]:
        """The stored keys, newest first, opened with `sealer`; made (one) on the first start, and a
        key found plain sealed. Serialized, so two instances starting together make one key."""
        ...


class AuthUnitOfWork(UnitOfWork, Protocol):
    # Read-only here, so that a unit's own repository classes (Postgres or in-memory) satisfy it.
    @property
    def credentials(self) -> Credentials: ...

    @property
    def signing_keys(self) -> SigningKeys: ...


class SqlAuthUnitOfWork(SqlUnitOfWork):
    credentials: Credentials
    signing_keys: SigningKeys

    def open_repositories(self, conn: Connection) -> None:
        self.credentials = PostgresCredentials(conn)
        self.signing_keys = PostgresSigningKeys(conn)
