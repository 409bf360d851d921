"""auth's Postgres repositories through its unit of work: a taken username (letter case aside)
refused with the transaction still usable, role changes raising the token version, the console's
page, and reads on their own statement."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

import sandwich.services.auth as auth_package
from sandwich.services.auth.domain import Credential
from sandwich.services.auth.unit_of_work import SqlAuthUnitOfWork
from tests.integration.scratch import scratch_database

pytestmark = pytest.mark.integration

MIGRATIONS = Path(auth_package.__file__).parent / "migrations"


def credential(username: str, roles: list[str] | None = None) -> Credential:
    return Credential(str(uuid.uuid4()), username, "hash", roles or ["customer"], None)


async def test_credentials_round_trip_through_the_unit_of_work() -> None:
    alice, bob = credential("Alice"), credential("bob", ["courier", "customer"])
    async with scratch_database("auth", MIGRATIONS) as db:
        uow = SqlAuthUnitOfWork(db, None)
        async with uow:
            assert await uow.credentials.add(alice)
            assert not await uow.credentials.add(credential("ALICE")), "taken, letter case aside"
            assert await uow.credentials.add(bob), "the transaction goes on after a refused name"
            await uow.commit()
        async with uow.statements() as step:
            assert await step.credentials.by_username("alice") == alice
            assert await step.credentials.token_version(bob.user_id) == 0
            assert await step.credentials.token_version("not-a-uuid") is None
            page = await step.credentials.page(role="courier", prefix="B", after=None, limit=10)
            assert page == [bob]
        async with uow:
            changed = await uow.credentials.set_roles("ALICE", ["cook", "customer"], "fp-1")
            await uow.commit()
        assert changed is not None and (changed.token_version, changed.food_point_id) == (1, "fp-1")
        async with uow:
            await uow.credentials.remove(bob.user_id)
            # ended without a commit: the removal does not stay
        async with uow.statements() as step:
            assert await step.credentials.token_version(bob.user_id) == 0
            assert await step.credentials.set_roles("nobody", [], None) is None
