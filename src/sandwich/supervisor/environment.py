"""The environment each child runs with: only variables configure a service, exactly as in a
container, so this is the whole of what a service learns from the platform that started it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sandwich.platform.settings import SERVICES, Flow, service_url_env
from sandwich.platform.supervised import PLATFORM_ID_ENV, SUPERVISOR_PID_ENV
from sandwich.supervisor import credentials
from sandwich.supervisor.engines import PlatformEngines
from sandwich.supervisor.processes import LOCALHOST, MAILSINK, ManagedProcess


def child_environment(
    base: Mapping[str, str],
    proc: ManagedProcess,
    procs: Mapping[str, ManagedProcess],
    *,
    engines: PlatformEngines,
    flow: Flow,
    data_dir: Path,
    database_roles: Mapping[str, str],
    platform_id: str,
) -> dict[str, str]:
    """`base` (the platform's environment) with the child's own service, port, engines, broker user
    and its peers' URLs on top; the supervisor's pid and platform id let it be found and let it
    notice when the supervisor is gone."""
    env = dict(base)
    secrets = engines.secrets_dir
    service = proc.service_name
    env.update(
        SANDWICH_SERVICE=service,
        SANDWICH_HOST=proc.bind_host,
        SANDWICH_PORT=str(proc.port),
        SANDWICH_FLOW=flow.value,
        SANDWICH_DATA_DIR=str(data_dir),
        SANDWICH_SMTP_HOST=LOCALHOST,
        SANDWICH_SMTP_PORT=str(procs[MAILSINK].port),
        DATABASE_URL=credentials.service_database_url(engines.database_url, database_roles, secrets, service),
        SANDWICH_SECRETS_DIR=str(secrets),
        PYTHONUNBUFFERED="1",
    )
    env[SUPERVISOR_PID_ENV] = str(os.getpid())
    env[PLATFORM_ID_ENV] = platform_id
    if engines.kafka_bootstrap:
        env["KAFKA_BOOTSTRAP_SERVERS"] = engines.kafka_bootstrap
        env.pop("NATS_URL", None)
    elif engines.nats_url:
        env["NATS_URL"] = engines.nats_url
    env.pop("SANDWICH_BROKER_USER", None)
    env.pop("SANDWICH_BROKER_PASSWORD_FILE", None)
    if service in engines.broker_users:
        env["SANDWICH_BROKER_USER"] = service
        env["SANDWICH_BROKER_PASSWORD_FILE"] = str(engines.broker_password_file(service))
    for name, other in procs.items():
        if name in SERVICES:
            env[service_url_env(name)] = other.url
    return env
