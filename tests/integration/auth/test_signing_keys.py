"""auth keeps its token signing keys sealed: the database holds no private key in the clear."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import text

import sandwich.services.auth as auth_package
from sandwich.platform.sealing import CannotOpen, Sealer
from sandwich.platform.tokens import SigningKey
from sandwich.services.auth import storage
from tests.integration.scratch import scratch_database

pytestmark = pytest.mark.integration

MIGRATIONS = Path(auth_package.__file__).parent / "migrations"


async def test_a_new_key_is_stored_sealed_and_opens_to_the_same_key() -> None:
    sealer = Sealer(b"s" * 32)
    async with scratch_database("auth", MIGRATIONS) as db:
        async with db.begin() as conn:
            [made] = await storage.ensure_signing_key(conn, sealer)
        async with db.begin() as conn:
            row = (await conn.execute(text("SELECT kid, private_pem, sealed_pem FROM signing_keys"))).one()
            again = await storage.ensure_signing_key(conn, sealer)
        assert row.private_pem is None
        assert b"PRIVATE KEY" not in bytes(row.sealed_pem)
        with pytest.raises(ValueError):
            serialization.load_pem_private_key(bytes(row.sealed_pem), password=None)
        assert again == [made], "a second start finds the key it made"
        with pytest.raises(CannotOpen):
            async with db.begin() as conn:
                await storage.signing_keys(conn, Sealer(b"o" * 32))


async def test_a_key_kept_plain_by_an_earlier_version_is_sealed_at_start() -> None:
    sealer = Sealer(b"s" * 32)
    old = SigningKey.generate()
    async with scratch_database("auth", MIGRATIONS) as db:
        async with db.begin() as conn:
            await conn.execute(
                text("INSERT INTO signing_keys (kid, private_pem) VALUES (:kid, :pem)"),
                {"kid": old.kid, "pem": old.private_pem},
            )
            keys = await storage.ensure_signing_key(conn, sealer)
        async with db.begin() as conn:
            row = (await conn.execute(text("SELECT private_pem, sealed_pem FROM signing_keys"))).one()
        assert keys == [old], "the old key goes on signing (tokens it issued stay valid)"
        assert row.private_pem is None
        assert sealer.open(bytes(row.sealed_pem), old.kid) == old.private_pem
