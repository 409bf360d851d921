"""What users does: create a newly registered user's profile (once, whoever repeats it), read and
edit profiles. Use cases of (command, unit of work); api.py maps their errors to the contract's."""

from __future__ import annotations

from dataclasses import dataclass

from sandwich.services.users.context import NewUserEvents
from sandwich.services.users.domain import Profile, may_read_profile
from sandwich.services.users.unit_of_work import UsersUnitOfWork


class UsernameTaken(Exception):
    pass


class ProfileNotFound(Exception):
    pass


class NotYourProfile(Exception):
    pass


@dataclass(frozen=True)
class Created:
    """The user's profile; `new` when this call created it (a repeat finds it there)."""

    profile: Profile
    new: bool


async def create_profile(profile: Profile, uow: UsersUnitOfWork, announce: NewUserEvents) -> Created:
    """Create the profile of a newly registered user, announced in its transaction; repeating the
    call for the same user id is harmless. UsernameTaken when another user has the name."""
    async with uow:
        existing = await uow.profiles.by_username(profile.username)
        if existing is not None:
            if existing.user_id != profile.user_id:
                raise UsernameTaken(profile.username)
            return Created(existing, new=False)
        if not await uow.profiles.add(profile):
            # A concurrent request stored this user id, or a username equal to it but for letter case.
            stored = await uow.profiles.by_id(profile.user_id)
            if stored is None:
                raise UsernameTaken(profile.username)
            return Created(stored, new=False)
        uow.events.record(*announce(profile))
        await uow.commit()
    return Created(profile, new=True)


async def profile_by_id(user_id: str, uow: UsersUnitOfWork) -> Profile:
    """ProfileNotFound; ValueError when `user_id` is not a user id."""
    async with uow.statements() as step:
        profile = await step.profiles.by_id(user_id)
    if profile is None:
        raise ProfileNotFound(user_id)
    return profile


async def profile_of(username: str, reader: str, roles: frozenset[str], uow: UsersUnitOfWork) -> Profile:
    """`username`'s profile as `reader` may see it: NotYourProfile, ProfileNotFound."""
    if not may_read_profile(reader, roles, username):
        raise NotYourProfile(username)
    async with uow.statements() as step:
        profile = await step.profiles.by_username(username)
    if profile is None:
        raise ProfileNotFound(username)
    return profile


async def update_profile(
    user_id: str, email: str, phone: str | None, full_name: str | None, uow: UsersUnitOfWork
) -> Profile:
    async with uow:
        profile = await uow.profiles.update(user_id, email, phone, full_name)
        await uow.commit()
    if profile is None:
        raise ProfileNotFound(user_id)
    return profile
