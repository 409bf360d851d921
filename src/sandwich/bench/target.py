"""The platform under load: one the benchmark starts (and stops), or one already running.

A `Target` is what the phases need to know of it: where its gateway and services answer, which
processes are its (for the resource sampler), its database, mail sink and broker."""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from sandwich.bench import brokers as brokers_mod
from sandwich.bench.resources import discover_platform
from sandwich.platform.settings import SERVICES, Broker, Flow, Settings

BENCH_ADMIN = "bench-admin"


@dataclass
class Target:
    """The platform under load and what the benchmark knows of it."""

    flow: str
    gateway_url: str
    service_urls: dict[str, str]
    groups: Callable[[], Mapping[str, Sequence[int]]]
    mail_dir: Path | None
    database_url: str | None
    platform: Any = None  # sandwich.supervisor.Platform when self-started
    admin: tuple[str, str] | None = None
    data_dir: Path | None = None  # removed after the run when self-started
    broker: str | None = None  # nats | kafka; None: none runs (sync) or not known

    @property
    def self_started(self) -> bool:
        return self.platform is not None


def start_platform(
    flow: str,
    base_dir: Path,
    console: Console,
    *,
    broker: Broker | str = Broker.NATS,
    ready_timeout: float = 90.0,
    extra_env: Mapping[str, str] | None = None,
) -> Target:
    """A fresh platform of `flow` on the embedded engines (PostgreSQL and `broker`), in a directory
    of its own under base_dir. `ready_timeout` is raised for a broker that starts slowly (Kafka: its
    first start on a machine may also fetch its jars)."""
    from sandwich.supervisor import Platform

    data_dir = base_dir / f"platform-{flow}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    password = secrets.token_urlsafe(16)
    env = {
        "SANDWICH_ADMIN_USERNAME": BENCH_ADMIN,
        "SANDWICH_ADMIN_PASSWORD": password,
        "SANDWICH_LOGIN_RATE": "1000000",
        "SANDWICH_LOGIN_FAILURES": "1000000",
        "SANDWICH_LOGIN_ACCOUNT_FAILURES": "1000000",
        "SANDWICH_REGISTER_RATE": "1000000",
        "DATABASE_URL": "",
        "NATS_URL": "",
        "KAFKA_BOOTSTRAP_SERVERS": "",
        **(extra_env or {}),
    }
    platform = Platform(
        data_dir,
        flow,
        env_overrides=env,
        ready_timeout=brokers_mod.ready_timeout(broker, ready_timeout),
        broker=broker,
    )
    began = time.monotonic()
    try:
        platform.start()
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    console.log(
        f"[green]{flow}[/] platform{f' on {kind}' if (kind := broker_kind(platform)) else ''} ready in "
        f"{time.monotonic() - began:.1f}s at {platform.gateway_url}"
    )

    def groups() -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for name in (*SERVICES, "mailsink"):
            with contextlib.suppress(Exception):
                pid = platform.service_pid(name)
                if pid is not None:
                    found[name] = [pid]
        if platform.postgres is not None and platform.postgres.pid is not None:
            found["postgres"] = [platform.postgres.pid]
        if platform.broker is not None and platform.broker.pid is not None:
            found[platform.broker_kind.value] = [platform.broker.pid]  # nats | kafka
        return found

    return Target(
        flow=flow,
        gateway_url=platform.gateway_url,
        service_urls={name: platform.service_url(name) for name in SERVICES},
        groups=groups,
        mail_dir=platform.mail_dir,
        database_url=platform.database_url,
        platform=platform,
        admin=(BENCH_ADMIN, password),
        data_dir=data_dir,
        broker=broker_kind(platform),
    )


def broker_kind(platform: Any) -> str | None:
    """nats | kafka: the broker a self-started platform runs; None in sync (none runs)."""
    return None if platform.flow is Flow.SYNC else str(platform.broker_kind.value)


def stop_platform(target: Target, *, keep: bool = False) -> None:
    if target.platform is not None:
        target.platform.stop()
        if not keep and target.data_dir is not None:
            shutil.rmtree(target.data_dir, ignore_errors=True)


def attach_platform(url: str, data_dir: Path | None, admin: tuple[str, str] | None) -> Target:
    """A platform already running at `url`: its services, pids, database and mail sink are found
    where possible (the gateway process's environment, DATA_DIR/platform.json)."""
    service_urls, discovered = discover_platform(url)
    cached: dict[str, Any] = {"at": 0.0, "groups": {}}

    def groups() -> Mapping[str, Sequence[int]]:
        if time.monotonic() - cached["at"] > 5.0:
            cached["groups"] = discovered()
            cached["at"] = time.monotonic()
        result: Mapping[str, Sequence[int]] = cached["groups"]
        return result

    info: dict[str, str] = {}
    if data_dir is not None and (data_dir / "platform.json").exists():
        with contextlib.suppress(OSError, ValueError):
            info = json.loads((data_dir / "platform.json").read_text())
    if admin is None and data_dir is not None and (data_dir / "demo-credentials.json").exists():
        with contextlib.suppress(OSError, ValueError, KeyError):
            stored = json.loads((data_dir / "demo-credentials.json").read_text())
            admin = (stored["admin"]["username"], stored["admin"]["password"])
    mail_dir = data_dir / "mail" if data_dir is not None and (data_dir / "mail").is_dir() else None
    return Target(
        flow=info.get("flow", "unknown"),
        gateway_url=url.rstrip("/"),
        service_urls=service_urls,
        groups=groups,
        mail_dir=mail_dir,
        database_url=info.get("database_url") or None,
        admin=admin,
        broker="kafka" if info.get("kafka_bootstrap_servers") else "nats" if info.get("nats_url") else None,
    )


def platform_note(target: Target) -> str:
    if target.self_started:
        server = Settings().asgi_server.value  # what the self-started services inherit (SANDWICH_ASGI_SERVER)
        engines = brokers_mod.engines_note([target.broker] if target.broker else [])
        return f"self-started, {engines}, every service its own process under {server}"
    on = f" ({brokers_mod.broker_name(target.broker)})" if target.broker else ""
    return f"running platform at {target.gateway_url}{on}"
