"""auth's use cases through an in-memory unit of work: registration (a taken name refused letter case
aside with nothing written, users' refusal undoing the credential), login, role changes that retire
the tokens issued before, the console's pages, token versions, the first admin and the signing keys."""

from __future__ import annotations

import uuid

import pytest

from sandwich.platform.sealing import CannotOpen, Sealer
from sandwich.platform.tokens import SigningKey, TokenVerifier
from sandwich.services.auth import commands
from sandwich.services.auth.domain import InvalidRoles, NewAccount
from tests.unit.auth.fakes import FakeAuthUnitOfWork, FakePorts, fake_ports

pytestmark = pytest.mark.unit

ALICE = NewAccount("Alice", "correct horse", "alice@example.org", "+7", "Alice A.")
KEYS = [SigningKey.generate()]
TTL = 900


def claims_of(token: str, keys: list[SigningKey] = KEYS) -> dict[str, object]:
    verifier = TokenVerifier()
    verifier.load_jwks({"keys": [key.public_jwk() for key in keys]})
    return verifier.verify(token)


async def registered(
    uow: FakeAuthUnitOfWork, ports: FakePorts, account: NewAccount = ALICE, roles: list[str] | None = None
) -> commands.Account:
    return await commands.register(account, roles or ["customer"], uow, ports)


async def log_in(uow: FakeAuthUnitOfWork, ports: FakePorts, username: str, password: str) -> str:
    return (await commands.log_in(username, password, uow, ports, KEYS, TTL)).access_token


async def test_a_registration_stores_the_hashed_credential_and_tells_users_and_billing() -> None:
    uow, ports = FakeAuthUnitOfWork(), fake_ports()
    account = await registered(uow, ports)
    stored = uow.credentials.rows[account.user_id]
    assert uuid.UUID(account.user_id) and account.username == "Alice"
    assert (stored.password_hash, stored.roles, stored.token_version) == (
        "hashed:correct horse",
        ["customer"],
        0,
    )
    assert ports.profiles.profiles == {account.user_id: ALICE}
    assert ports.billing_accounts.opened == [(account.user_id, "Alice")]
    assert uow.commits == 1 and uow.announced == []


async def test_a_taken_username_letter_case_aside_is_refused_with_nothing_written() -> None:
    uow, ports = FakeAuthUnitOfWork(), fake_ports()
    first = await registered(uow, ports)
    with pytest.raises(commands.UsernameTaken):
        await registered(uow, ports, NewAccount("ALICE", "another password", "eve@example.org"))
    assert list(uow.credentials.rows) == [first.user_id]
    assert list(ports.profiles.profiles) == [first.user_id]
    assert ports.billing_accounts.opened == [(first.user_id, "Alice")]
    assert (uow.commits, uow.rollbacks) == (1, 1)


async def test_a_weak_password_is_refused_before_it_is_hashed_or_anything_stored() -> None:
    uow, ports = FakeAuthUnitOfWork(), fake_ports()
    with pytest.raises(commands.WeakPassword, match="at least 8"):
        await registered(uow, ports, NewAccount("bob", "short", "bob@example.org"))
    assert ports.passwords.hashed == 0 and uow.credentials.rows == {} and uow.commits == 0


async def test_a_name_users_has_for_someone_else_undoes_the_credential() -> None:
    uow, ports = FakeAuthUnitOfWork(), fake_ports()
    ports.profiles.answer = 409
    with pytest.raises(commands.UsernameTaken):
        await registered(uow, ports)
    assert uow.credentials.rows == {} and ports.billing_accounts.opened == []
    assert uow.commits == 2  # the credential, then its removal


@pytest.mark.parametrize("answer", [None, 500])
async def test_users_being_away_undoes_the_credential_and_says_how(answer: int | None) -> None:
    uow, ports = FakeAuthUnitOfWork(), fake_ports()
    ports.profiles.answer = answer
    with pytest.raises(commands.RegistrationUnavailable) as refused:
        await registered(uow, ports)
    assert refused.value.status == answer
    assert uow.credentials.rows == {} and ports.billing_accounts.opened == []
    ports.profiles.answer = 201
    assert (await registered(uow, ports)).username == "Alice", "the name is free again"


async def test_the_right_password_gets_a_token_of_the_user_signed_with_the_newest_key() -> None:
    uow, ports = FakeAuthUnitOfWork(), fake_ports()
    account = await registered(uow, ports)
    issued = await commands.log_in("alice", "correct horse", uow, ports, KEYS, TTL)
    claims = claims_of(issued.access_token)
    assert issued.expires_in == TTL
    assert (claims["sub"], claims["username"], claims["roles"], claims["ver"]) == (
        account.user_id,
        "Alice",
        ["customer"],
        0,
    )
    assert "food_point_id" not in claims
    assert claims_of(issued.access_token, [KEYS[0], SigningKey.generate()])["sub"] == account.user_id
    assert uow.commits == 1, "a login writes nothing"


async def test_a_wrong_password_and_an_unknown_user_are_refused_alike_after_a_check_each() -> None:
    uow, ports = FakeAuthUnitOfWork(), fake_ports()
    await registered(uow, ports)
    with pytest.raises(commands.InvalidCredentials):
        await log_in(uow, ports, "Alice", "wrong horse")
    with pytest.raises(commands.InvalidCredentials):
        await log_in(uow, ports, "nobody", "correct horse")
    assert ports.passwords.verified == 2, "an unknown user costs a password check too"


async def test_a_cooks_token_names_their_food_point() -> None:
    uow, ports = FakeAuthUnitOfWork(), fake_ports()
    await registered(uow, ports)
    await commands.change_roles("alice", ["cook"], "fp-1", uow)
    claims = claims_of(await log_in(uow, ports, "Alice", "correct horse"))
    assert (claims["roles"], claims["food_point_id"]) == (["cook", "customer"], "fp-1")


async def test_a_demoted_admins_tokens_carry_a_version_the_user_no_longer_has() -> None:
    uow, ports = FakeAuthUnitOfWork(), fake_ports()
    account = await registered(uow, ports, roles=commands.ADMIN_ROLES)
    old = claims_of(await log_in(uow, ports, "Alice", "correct horse"))
    demoted = await commands.change_roles("ALICE", [], None, uow)
    current = await commands.token_version(account.user_id, uow)
    assert demoted.roles == ["customer"] and current == demoted.token_version == 1
    assert old["roles"] == ["admin", "customer"] and old["ver"] != current, "the gateway refuses it"
    new = claims_of(await log_in(uow, ports, "Alice", "correct horse"))
    assert (new["roles"], new["ver"]) == (["customer"], current)


@pytest.mark.parametrize(
    ("roles", "food_point_id"), [(["root"], None), (["cook"], None), (["courier"], "fp-1")]
)
async def test_invalid_roles_change_nothing(roles: list[str], food_point_id: str | None) -> None:
    uow, ports = FakeAuthUnitOfWork(), fake_ports()
    account = await registered(uow, ports)
    with pytest.raises(InvalidRoles):
        await commands.change_roles("Alice", roles, food_point_id, uow)
    assert uow.credentials.rows[account.user_id].roles == ["customer"]
    assert await commands.token_version(account.user_id, uow) == 0 and uow.commits == 1


async def test_roles_of_an_unknown_user_and_its_token_version_are_not_found() -> None:
    uow = FakeAuthUnitOfWork()
    with pytest.raises(commands.UserNotFound):
        await commands.change_roles("nobody", ["courier"], None, uow)
    with pytest.raises(commands.UserNotFound):
        await commands.token_version(str(uuid.uuid4()), uow)


async def test_the_console_pages_people_in_name_order_by_role_and_prefix() -> None:
    uow, ports = FakeAuthUnitOfWork(), fake_ports()
    for name in ("carol", "Bob", "alice", "bert"):
        await registered(uow, ports, NewAccount(name, "long enough", f"{name}@example.org"))
    await commands.change_roles("bert", ["courier"], None, uow)
    first = await commands.users_page(uow, role=None, prefix=None, after=None, limit=2)
    assert [c.username for c in first.items] == ["alice", "bert"] and first.next_after == "bert"
    rest = await commands.users_page(uow, role=None, prefix=None, after=first.next_after, limit=2)
    assert [c.username for c in rest.items] == ["Bob", "carol"] and rest.next_after is None
    couriers = await commands.users_page(uow, role="courier", prefix=None, after=None, limit=50)
    assert [c.username for c in couriers.items] == ["bert"]
    b_names = await commands.users_page(uow, role=None, prefix="B", after=None, limit=50)
    assert [c.username for c in b_names.items] == ["bert", "Bob"] and b_names.next_after is None


async def test_the_first_admin_is_made_once_and_an_existing_user_promoted_keeping_roles() -> None:
    uow, ports = FakeAuthUnitOfWork(), fake_ports()
    assert not await commands.make_admin("root", uow)
    await registered(uow, ports, NewAccount("root", "long enough", "root@example.org"), commands.ADMIN_ROLES)
    assert await commands.make_admin("ROOT", uow)
    assert uow.commits == 1, "an admin already is left as they are"
    account = await registered(uow, ports)
    await commands.change_roles("alice", ["courier"], None, uow)
    assert await commands.make_admin("alice", uow)
    promoted = uow.credentials.rows[account.user_id]
    assert (promoted.roles, promoted.token_version) == (["admin", "courier", "customer"], 2)


async def test_the_first_start_makes_a_sealed_signing_key_and_later_starts_find_it() -> None:
    uow, sealer = FakeAuthUnitOfWork(), Sealer(b"s" * 32)
    [made] = await commands.signing_keys(uow, sealer)
    [(kid, sealed)] = uow.signing_keys.sealed
    assert kid == made.kid and made.private_pem not in sealed
    assert await commands.signing_keys(uow, sealer) == [made]
    with pytest.raises(CannotOpen):
        await commands.signing_keys(uow, Sealer(b"o" * 32))
    assert len(uow.signing_keys.sealed) == 1
