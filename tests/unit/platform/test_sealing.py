"""Sealed values open with their key and context only."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sandwich.platform.sealing import CannotOpen, MissingSealingKey, Sealer, ensure_sealing_key

pytestmark = pytest.mark.unit


def test_a_sealed_value_opens_with_its_key_and_context(tmp_path: Path) -> None:
    path = tmp_path / "auth" / "signing-keys.seal"
    ensure_sealing_key(path)
    sealer = Sealer.load(path)
    sealed = sealer.seal(b"-----BEGIN PRIVATE KEY-----", "kid-1")
    assert b"PRIVATE KEY" not in sealed
    assert sealer.open(sealed, "kid-1") == b"-----BEGIN PRIVATE KEY-----"


def test_the_key_file_is_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "auth" / "signing-keys.seal"
    ensure_sealing_key(path)
    first = path.read_bytes()
    ensure_sealing_key(path)
    assert path.read_bytes() == first, "a second call must not replace the key (sealed values would be lost)"
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_another_context_another_key_or_a_changed_byte_does_not_open(tmp_path: Path) -> None:
    sealer = Sealer(b"k" * 32)
    sealed = sealer.seal(b"secret", "kid-1")
    with pytest.raises(CannotOpen):
        sealer.open(sealed, "kid-2")
    with pytest.raises(CannotOpen):
        Sealer(b"x" * 32).open(sealed, "kid-1")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(CannotOpen):
        sealer.open(tampered, "kid-1")
    with pytest.raises(CannotOpen):
        sealer.open(b"\x02" + sealed[1:], "kid-1")


def test_a_missing_key_file_says_where_it_should_be(tmp_path: Path) -> None:
    with pytest.raises(MissingSealingKey, match=r"signing-keys\.seal"):
        Sealer.load(tmp_path / "auth" / "signing-keys.seal")
