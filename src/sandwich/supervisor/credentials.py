"""What the services prove themselves with, made before they start: their keys and sealing keys
(platform/service_auth.py, platform/sealing.py) and, through `sandwich migrate`, a PostgreSQL role
and database of their own whose password files they are given."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from sandwich.platform import db_roles
from sandwich.platform.sealing import ensure_sealing_key, service_sealing_keys
from sandwich.platform.service_auth import ensure_service_keys
from sandwich.supervisor.processes import PlatformStartError, tail


def secrets_dir(env: Mapping[str, str], data_dir: Path) -> Path:
    """The services' keys (platform/service_auth.py): made at the first start, 0600 in 0700."""
    return Path(env.get("SANDWICH_SECRETS_DIR") or data_dir / "secrets")


def database_roles_dir(secrets: Path) -> Path:
    """Where each service's PostgreSQL password file is (0600): `sandwich migrate` writes them."""
    return secrets / "postgres"


def ensure_service_secrets(secrets: Path, services: Iterable[str]) -> None:
    """Every service's key pair and every sealing key, made the first time."""
    ensure_service_keys(secrets, tuple(services))
    for sealing_key in service_sealing_keys(secrets):
        ensure_sealing_key(sealing_key)


def service_database_url(database_url: str, roles: Mapping[str, str], secrets: Path, service: str) -> str:
    """The service's own role and database when the migration made roles; else the shared URL.
    A service without a database of its own (the gateway) then gets none."""
    if not roles:
        return database_url
    role = roles.get(service)
    return db_roles.service_url(database_url, role, database_roles_dir(secrets)) if role else ""


def migrate_databases(
    env: Mapping[str, str], database_url: str, data_dir: Path, secrets: Path, log_path: Path, timeout: float
) -> dict[str, str]:
    """`sandwich migrate` in a process of its own before the services start: they then find their
    databases up to date and never load Alembic (about 10 MB less in each of them). Returns the
    roles it made (service -> role)."""
    child_env = dict(env)
    child_env.update(DATABASE_URL=database_url, SANDWICH_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    roles_dir = database_roles_dir(secrets)
    command = [sys.executable, "-m", "sandwich.cli.main", "migrate", "--service-roles", str(roles_dir)]
    with log_path.open("ab") as log_file:
        try:
            done = subprocess.run(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=child_env,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PlatformStartError(f"migrations took over {exc.timeout:.0f}s:\n{tail(log_path)}") from exc
    if done.returncode != 0:
        raise PlatformStartError(f"migrations failed (exit {done.returncode}):\n{tail(log_path)}")
    return db_roles.read_roles(roles_dir)
