"""auth in memory: credentials and sealed signing keys as the tables keep them, and the ports
(password hashing, users, billing) as stand-ins that record what they were asked."""

from __future__ import annotations

from sandwich.platform.sealing import Sealer
from sandwich.platform.tokens import SigningKey
from sandwich.services.auth.context import AuthPorts
from sandwich.services.auth.domain import Credential, NewAccount
from sandwich.services.auth.ports import ProfileNameTaken, UsersUnavailable
from tests.unit.fakes import FakeUnitOfWork


class FakeCredentials:
    def __init__(self) -> None:
        self.rows: dict[str, Credential] = {}

    async def add(self, credential: Credential) -> bool:
        if await self.by_username(credential.username) is not None:
            return False
        self.rows[credential.user_id] = credential
        return True

    async def remove(self, user_id: str) -> None:
        self.rows.pop(user_id, None)

    async def by_username(self, username: str) -> Credential | None:
        return next((c for c in self.rows.values() if c.username.lower() == username.lower()), None)

    async def set_roles(
        self, username: str, roles: list[str], food_point_id: str | None
    ) -> Credential | None:
        old = await self.by_username(username)
        if old is None:
            return None
        new = Credential(
            old.user_id, old.username, old.password_hash, roles, food_point_id, old.token_version + 1
        )
        self.rows[old.user_id] = new
        return new

    async def page(
        self, *, role: str | None, prefix: str | None, after: str | None, limit: int
    ) -> list[Credential]:
        found = sorted(self.rows.values(), key=lambda c: c.username.lower())
        if role is not None:
            found = [c for c in found if role in c.roles]
        if prefix is not None:
            found = [c for c in found if c.username.lower().startswith(prefix.lower())]
        if after is not None:
            found = [c for c in found if c.username.lower() > after.lower()]
        return found[:limit]

    async def token_version(self, user_id: str) -> int | None:
        credential = self.rows.get(user_id)
        return None if credential is None else credential.token_version


class FakeSigningKeys:
    """Keeps only what the table keeps: each key sealed, bound to its key id, newest first."""

    def __init__(self) -> None:
        self.sealed: list[tuple[str, bytes]] = []

    async def ensure(self, sealer: Sealer) -> list[SigningKey]:
        keys = [SigningKey(kid, sealer.open(sealed, kid)) for kid, sealed in self.sealed]
        if not keys:
            key = SigningKey.generate()
            self.sealed.insert(0, (key.kid, sealer.seal(key.private_pem, key.kid)))
            keys = [key]
        return keys


class FakeAuthUnitOfWork(FakeUnitOfWork):
    repositories = ("credentials", "signing_keys")

    def __init__(self) -> None:
        super().__init__()
        self.credentials = FakeCredentials()
        self.signing_keys = FakeSigningKeys()


class FakePasswords:
    """A readable 'hash'; counts the checks, which must happen for unknown users too."""

    def __init__(self) -> None:
        self.hashed = 0
        self.verified = 0

    async def hash(self, password: str) -> str:
        self.hashed += 1
        return f"hashed:{password}"

    async def verify(self, password: str, password_hash: str | None) -> bool:
        self.verified += 1
        return password_hash is not None and password_hash == f"hashed:{password}"


class FakeUsers:
    """users' profiles; `answer` other than 201 is what users answers (None: it is away)."""

    def __init__(self) -> None:
        self.profiles: dict[str, NewAccount] = {}
        self.answer: int | None = 201

    async def create(self, user_id: str, account: NewAccount) -> None:
        if self.answer is None or (self.answer >= 300 and self.answer != 409):
            raise UsersUnavailable(self.answer)
        taken = any(
            other.username.lower() == account.username.lower() and uid != user_id
            for uid, other in self.profiles.items()
        )
        if self.answer == 409 or taken:
            raise ProfileNameTaken(account.username)
        self.profiles[user_id] = account


class FakeBilling:
    def __init__(self) -> None:
        self.opened: list[tuple[str, str]] = []

    async def open(self, user_id: str, username: str) -> None:
        self.opened.append((user_id, username))


class FakePorts(AuthPorts):
    """The ports with their fakes' types, so tests reach what the fakes recorded."""

    passwords: FakePasswords
    profiles: FakeUsers
    billing_accounts: FakeBilling


def fake_ports() -> FakePorts:
    return FakePorts(FakePasswords(), FakeUsers(), FakeBilling())
