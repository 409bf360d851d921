"""users' use cases through an in-memory unit of work: a profile created once whoever repeats the
call, a taken username refused with nothing written, reads by who may read, edits."""

from __future__ import annotations

import pytest

from sandwich.platform.events import USER_CREATED, Envelope
from sandwich.platform.outbox import Event
from sandwich.services.users import commands
from sandwich.services.users.domain import Profile
from tests.unit.fakes import FakeUnitOfWork

pytestmark = pytest.mark.unit

ALICE = Profile("00000000-0000-0000-0000-0000000000a1", "Alice", "alice@example.org", None, None)
BOB = Profile("00000000-0000-0000-0000-0000000000b1", "bob", "bob@example.org", "+7", "Bob B.")


class FakeProfiles:
    def __init__(self) -> None:
        self.rows: dict[str, Profile] = {}

    async def add(self, profile: Profile) -> bool:
        taken = profile.user_id in self.rows or await self.by_username(profile.username) is not None
        if taken:
            return False
        self.rows[profile.user_id] = profile
        return True

    async def by_username(self, username: str) -> Profile | None:
        return next((p for p in self.rows.values() if p.username.lower() == username.lower()), None)

    async def by_id(self, user_id: str) -> Profile | None:
        return self.rows.get(user_id)

    async def update(
        self, user_id: str, email: str, phone: str | None, full_name: str | None
    ) -> Profile | None:
        if user_id not in self.rows:
            return None
        old = self.rows[user_id]
        self.rows[user_id] = Profile(old.user_id, old.username, email, phone, full_name)
        return self.rows[user_id]


class FakeUsersUnitOfWork(FakeUnitOfWork):
    repositories = ("profiles",)

    def __init__(self) -> None:
        super().__init__()
        self.profiles = FakeProfiles()


def user_created(profile: Profile) -> list[Event]:
    envelope = Envelope(type=USER_CREATED, producer="users", key=profile.user_id, payload={})
    return [Event("user.events", envelope)]


def nobody_listens(profile: Profile) -> list[Event]:
    return []


async def test_a_new_profile_is_created_and_announced_once() -> None:
    uow = FakeUsersUnitOfWork()
    created = await commands.create_profile(ALICE, uow, user_created)
    assert created.new and created.profile == ALICE
    again = await commands.create_profile(ALICE, uow, user_created)
    assert not again.new and again.profile == ALICE
    assert uow.announced_types() == [USER_CREATED]


async def test_without_a_listener_nothing_is_announced() -> None:
    uow = FakeUsersUnitOfWork()
    assert (await commands.create_profile(ALICE, uow, nobody_listens)).new
    assert uow.announced == [] and uow.profiles.rows == {ALICE.user_id: ALICE}


async def test_a_username_taken_by_another_user_letter_case_aside_is_refused() -> None:
    uow = FakeUsersUnitOfWork()
    await commands.create_profile(ALICE, uow, user_created)
    impostor = Profile("00000000-0000-0000-0000-0000000000c1", "ALICE", "eve@example.org", None, None)
    with pytest.raises(commands.UsernameTaken):
        await commands.create_profile(impostor, uow, user_created)
    assert list(uow.profiles.rows) == [ALICE.user_id]
    assert uow.announced_types() == [USER_CREATED]


async def test_a_profile_is_read_by_its_owner_admins_and_services_only() -> None:
    uow = FakeUsersUnitOfWork()
    await commands.create_profile(BOB, uow, user_created)
    assert await commands.profile_of("BOB", "bob", frozenset(), uow) == BOB
    assert await commands.profile_of("bob", "root", frozenset({"admin"}), uow) == BOB
    assert await commands.profile_of("bob", "notifications", frozenset({"service"}), uow) == BOB
    with pytest.raises(commands.NotYourProfile):
        await commands.profile_of("bob", "alice", frozenset({"customer"}), uow)
    with pytest.raises(commands.ProfileNotFound):
        await commands.profile_of("carol", "root", frozenset({"admin"}), uow)


async def test_an_edit_changes_the_contact_data_and_not_the_name() -> None:
    uow = FakeUsersUnitOfWork()
    await commands.create_profile(BOB, uow, user_created)
    edited = await commands.update_profile(BOB.user_id, "b@example.org", None, None, uow)
    assert (edited.username, edited.email, edited.phone) == ("bob", "b@example.org", None)
    assert await commands.profile_by_id(BOB.user_id, uow) == edited
    with pytest.raises(commands.ProfileNotFound):
        await commands.update_profile(ALICE.user_id, "a@example.org", None, None, uow)
