"""Secrets the platform makes for itself (database and broker passwords): random, each in a file of
its own that only its owner may read (0600, in a 0700 folder), written whole or not at all."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

PASSWORD_BYTES = 24


def new_password() -> str:
    """A random password made of URL- and passfile-safe characters (no `:`, `\\`, `@` or quotes)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def private_folder(folder: Path) -> Path:
    """A folder for secrets: made if missing, 0700."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder


def write_private(path: Path, text: str) -> None:
    """Write a file 0600, whole or not at all."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)


def ensure_password_file(path: Path) -> str:
    """The password kept in `path` (one line), made the first time."""
    try:
        password = path.read_text().strip()
    except FileNotFoundError:
        password = ""
    if not password:
        password = new_password()
        private_folder(path.parent)
        write_private(path, password + "\n")
    return password
