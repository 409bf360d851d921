"""Secrets a service keeps in its database are sealed (AES-256-GCM) with a key that is not there: a
dump, a backup or a stolen replica of the database alone gives nothing away.

The sealing key is 32 random bytes in a 0600 file under the secrets directory (made by `sandwich up`,
from a Secret in a cluster). Each sealed value is bound to what it belongs to (`context`, e.g. a
signing key's id), so a sealed value copied onto another row does not open.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
VERSION = b"\x01"


class MissingSealingKey(RuntimeError):
    """The service's sealing key file is not there: it cannot read or keep its secrets."""


class CannotOpen(ValueError):
    """A sealed value did not open with this key and context (another key, or tampered with)."""


def token_signing_sealing_key(secrets_dir: Path) -> Path:
    """Where auth's key for sealing its token signing keys lives."""
    return secrets_dir / "auth" / "signing-keys.seal"


def web_sessions_sealing_key(secrets_dir: Path) -> Path:
    """Where web's key for sealing the tokens of its sessions lives."""
    return secrets_dir / "web" / "sessions.seal"


def service_sealing_keys(secrets_dir: Path) -> list[Path]:
    """Every sealing key the platform's services use: what `sandwich up` makes."""
    return [token_signing_sealing_key(secrets_dir), web_sessions_sealing_key(secrets_dir)]


def new_sealing_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def ensure_sealing_key(path: Path) -> None:
    """Make the key file (0600, in a 0700 folder) if there is none yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    if path.exists():
        return
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(new_sealing_key())
    os.replace(partial, path)


class Sealer:
    """Seals and opens values with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a sealing key is {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)

    @classmethod
    def load(cls, path: Path) -> Sealer:
        try:
            return cls(path.read_bytes())
        except FileNotFoundError:
            raise MissingSealingKey(
                f"{path} is missing: `sandwich up` makes it; elsewhere mount it from a Secret under "
                "SANDWICH_SECRETS_DIR"
            ) from None

    def seal(self, plaintext: bytes, context: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return VERSION + nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes:
        if sealed[:1] != VERSION or len(sealed) < 1 + NONCE_BYTES:
            raise CannotOpen("not a sealed value of a known version")
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, context.encode())
        except InvalidTag:
            raise CannotOpen("the value does not open with this key for this context") from None
