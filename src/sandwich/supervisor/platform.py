"""The whole platform on one machine: engines, mail sink and every service, supervised.

`Platform` is what `sandwich up` runs, and what integration and end-to-end tests use in-process, so
that the platform a developer clicks through is exactly the one the tests exercise. It is
deliberately synchronous (subprocesses plus one monitor thread): a pytest fixture can start it,
kill a service or the broker in the middle of a test, and stop it, without an event loop.

Each service is a separate OS process (`python -m sandwich.cli.serve NAME`), configured only by
environment variables, exactly as in a container. A service that dies is restarted on the same port
with exponential backoff (processes.py), unless a test killed it on purpose (`kill_service`).
Whatever happens during start-up or shutdown, no process is left behind: children are terminated in
order (services, then broker, then database) and SIGKILLed if they do not go; children also watch
the supervisor's pid and exit on their own if it is killed outright.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from sandwich.platform.embedded.apache_kafka import EmbeddedApacheKafka
from sandwich.platform.embedded.brokers import EmbeddedNats
from sandwich.platform.embedded.child_process import StopsOnExit
from sandwich.platform.embedded.file_lock import FileLock
from sandwich.platform.embedded.postgres import EmbeddedPostgres
from sandwich.platform.settings import SERVICES, Broker, Flow
from sandwich.platform.supervised import PLATFORM_ID_ENV
from sandwich.supervisor import credentials
from sandwich.supervisor.children import Children
from sandwich.supervisor.connection_file import CONNECTION_FILE, write_connection_file
from sandwich.supervisor.engines import Component, PlatformEngines
from sandwich.supervisor.environment import child_environment
from sandwich.supervisor.processes import (
    LOCALHOST,
    MAILSINK,
    ManagedProcess,
    PlatformError,
    PlatformStartError,
)

log = logging.getLogger("sandwich.supervisor")


class Platform(StopsOnExit):
    """All of the platform on this machine: `start()` blocks until every service is ready.

    data_dir        where the embedded PostgreSQL and broker keep their data, and logs/ and mail/ live
    flow            hybrid | sync | async, passed to every service as SANDWICH_FLOW
    broker          nats | kafka: which broker to embed when the environment names none
    gateway_port    the gateway's port (a free one when None)
    apps_port       the apps' port (web: the people's apps; a free one when None)
    env_overrides   variables for the children on top of this process's environment; DATABASE_URL,
                    NATS_URL or KAFKA_BOOTSTRAP_SERVERS there mean "use that, start none of our own"
    """

    def __init__(
        self,
        data_dir: Path | str,
        flow: Flow | str = Flow.HYBRID,
        gateway_port: int | None = None,
        env_overrides: Mapping[str, str] | None = None,
        *,
        host: str = LOCALHOST,
        services: Sequence[str] = SERVICES,
        ready_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        broker: Broker | str = Broker.NATS,
        apps_port: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.flow = Flow(flow)
        self.host = host
        self.gateway_port = gateway_port
        self.apps_port = apps_port
        self.services: tuple[str, ...] = tuple(services)
        unknown = set(self.services) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown services: {', '.join(sorted(unknown))}")
        self.logs_dir = self.data_dir / "logs"
        self.mail_dir = self.data_dir / "mail"
        self._env: dict[str, str] = {**os.environ, **(env_overrides or {})}
        self._platform_id = uuid.uuid4().hex
        # One platform per data directory: two would fight over the database and broker files.
        self._dir_lock = FileLock(self.data_dir / "platform.lock")
        self._children = Children(
            self.logs_dir, self._child_env, ready_timeout=ready_timeout, stop_timeout=stop_timeout
        )
        self._engines = PlatformEngines(self._env, self.data_dir, self.flow, Broker(broker))
        self._database_roles: dict[str, str] = {}
        self._started = False
        self._connection_file_written = False

    @property
    def ready_timeout(self) -> float:
        """Seconds a start (or a restarted service) has to become ready; `sandwich up` sets it."""
        return self._children.ready_timeout

    @ready_timeout.setter
    def ready_timeout(self, seconds: float) -> None:
        self._children.ready_timeout = seconds

    @property
    def stop_timeout(self) -> float:
        """Seconds a child has to stop after SIGTERM before it is killed."""
        return self._children.stop_timeout

    @stop_timeout.setter
    def stop_timeout(self, seconds: float) -> None:
        self._children.stop_timeout = seconds

    # -- addresses -------------------------------------------------------------------------------

    @property
    def gateway_url(self) -> str:
        return self.service_url("gateway")

    @property
    def apps_url(self) -> str | None:
        """Where people open the apps (the web service), or None when it does not run here."""
        return self.service_url("web") if "web" in self.services else None

    def service_url(self, name: str) -> str:
        """Base URL of a service (or `mailsink`'s SMTP address as http://host:port)."""
        return self._proc(name).url

    def service_port(self, name: str) -> int:
        return self._proc(name).port

    def service_pid(self, name: str) -> int | None:
        return self._proc(name).pid

    def service_log(self, name: str) -> Path:
        return self._proc(name).log_path

    @property
    def broker_kind(self) -> Broker:
        """The broker the services use: nats | kafka (the environment's, when it names one)."""
        return self._engines.broker_kind

    @property
    def database_url(self) -> str:
        """The server's URL as its administrator (the superuser of the embedded one): what `sandwich
        migrate` uses, and what services get when they cannot have roles of their own."""
        if not self._engines.database_url:
            raise PlatformError("the platform has no database yet (not started)")
        return self._engines.database_url

    @property
    def nats_url(self) -> str | None:
        """The NATS URL the services get, or None (sync flow, or Kafka configured)."""
        return self._engines.nats_url or None

    @property
    def broker_admin(self) -> tuple[str, Path] | None:
        """The embedded broker's admin user and its password file (None for an external broker,
        whose clients connect as its URL says)."""
        return self._engines.broker_admin

    @property
    def nats_admin_url(self) -> str | None:
        """The NATS URL with the admin's credentials, for the platform's own tools (engines.py)."""
        return self._engines.nats_admin_url

    @property
    def smtp_address(self) -> tuple[str, int]:
        return LOCALHOST, self._proc(MAILSINK).port

    @property
    def postgres(self) -> EmbeddedPostgres | None:
        return self._engines.postgres

    @property
    def kafka_bootstrap_servers(self) -> str | None:
        """The Kafka bootstrap servers the services get, or None (sync flow, or NATS)."""
        return self._engines.kafka_bootstrap or None

    @property
    def broker(self) -> EmbeddedNats | EmbeddedApacheKafka | None:
        """The embedded broker, when this platform runs one."""
        return self._engines.broker

    @property
    def running(self) -> bool:
        return self._started

    @property
    def secrets_dir(self) -> Path:
        """The services' keys (platform/service_auth.py): made at the first start, 0600 in 0700."""
        return credentials.secrets_dir(self._env, self.data_dir)

    @property
    def database_roles_dir(self) -> Path:
        """Where each service's PostgreSQL password file is (0600): `sandwich migrate` writes them."""
        return credentials.database_roles_dir(self.secrets_dir)

    def components(self) -> list[Component]:
        """What runs where, for the status table."""
        rows = self._engines.components()
        with self._children.lock:
            for proc in self._children.procs.values():
                if proc.name == MAILSINK:
                    address = f"smtp://{LOCALHOST}:{proc.port}"
                    rows.append(Component(MAILSINK, "smtp sink", address, proc.pid, proc.log_path))
                else:
                    rows.append(Component(proc.name, "service", proc.url, proc.pid, proc.log_path))
        return rows

    @property
    def connection_file(self) -> Path:
        return self.data_dir / CONNECTION_FILE

    def connection_info(self) -> dict[str, str]:
        """What platform.json holds: enough for a client of the platform's engines to find them."""
        broker = self.flow is not Flow.SYNC
        admin = self.broker_admin if broker else None
        return {
            "database_url": self._engines.database_url,
            "nats_url": self._engines.nats_url if broker else "",
            "kafka_bootstrap_servers": self._engines.kafka_bootstrap if broker else "",
            "db_prefix": self._env.get("SANDWICH_DB_PREFIX", "sandwich"),
            "topic_prefix": self._env.get("SANDWICH_TOPIC_PREFIX", ""),
            "gateway_url": self.gateway_url,
            "flow": self.flow.value,
            # The broker's admin, for the platform's own tools (replay): a password file, 0600.
            "broker_user": admin[0] if admin else "",
            "broker_password_file": str(admin[1]) if admin else "",
        }

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start everything and return once every service answers GET /health/ready.

        Raises PlatformStartError (after stopping whatever was started) when some part is not ready
        within `ready_timeout` seconds.
        """
        with self._children.lock:
            if self._started:
                return
            self._children.stopping.clear()
        began = time.monotonic()
        holder = self._dir_lock.acquire()
        if holder is not None:
            raise PlatformStartError(f"{self.data_dir} is in use by another platform (pid {holder})")
        try:
            self._start_parts()
            log.info("platform ready in %.1fs: gateway at %s", time.monotonic() - began, self.gateway_url)
        except BaseException:
            self.stop()
            raise

    def _start_parts(self) -> None:
        """The engines, the services' credentials and databases, then the children, in that order."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        self._engines.start_database()
        self._engines.start_broker_if_needed()
        credentials.ensure_service_secrets(self.secrets_dir, self.services)
        fixed_ports = {"gateway": self.gateway_port, "web": self.apps_port}
        self._children.allocate_ports(self.services, self.host, fixed_ports)
        self._database_roles = credentials.migrate_databases(
            self._env,
            self._engines.database_url,
            self.data_dir,
            self.secrets_dir,
            self.logs_dir / "migrate.log",
            self.ready_timeout,
        )
        self._children.start_all()
        self._connection_file_written = write_connection_file(self.connection_file, self.connection_info())
        self._started = True

    def stop(self) -> None:
        """Stop everything: services and mail sink (SIGTERM, then SIGKILL after `stop_timeout`), the
        broker, the database. Idempotent, and safe after a start that failed halfway."""
        self._children.stopping.set()
        self._remove_connection_file()
        with self._children.lock:
            self._children.stop_all(PLATFORM_ID_ENV, self._platform_id)
            self._started = False
        for error in self._engines.stop():
            log.error("while stopping the platform: %s", error)
        self._dir_lock.release()

    def __enter__(self) -> Platform:
        self.start()
        return self

    # -- fault injection ---------------------------------------------------------------------------

    def kill_service(self, name: str, sig: int = signal.SIGKILL, *, timeout: float | None = None) -> None:
        """Send `sig` to a service (or the mail sink) and keep it down until start_service().

        For terminating signals this waits until the process is gone (SIGKILL after `timeout`); with
        SIGSTOP the process stays, frozen, which is how a hung service looks to its peers.
        """
        self._children.kill(name, sig, timeout)

    def start_service(self, name: str, *, wait: bool = True) -> None:
        """Bring back a service stopped by kill_service(): same port, same environment. A frozen
        (SIGSTOPped) process is continued instead. Waits until it is ready unless wait=False."""
        self._children.start(name, wait=wait)

    def add_replica(self, service: str) -> str:
        """Start one more process of `service` (a port and log of its own, the same database and
        consumer groups) and wait until it is ready. Returns its name (`service#N`), which
        kill_service() and start_service() take; the gateway keeps calling the first process."""
        if service not in self.services:
            raise PlatformError(f"{service} does not run in this platform")
        return self._children.add_replica(service)

    def restart_service(self, name: str, sig: int = signal.SIGTERM) -> None:
        self.kill_service(name, sig)
        self.start_service(name)

    def stop_broker(self) -> None:
        """Stop the embedded broker (the services see it go down)."""
        self._engines.embedded_broker().stop()

    def start_broker(self) -> None:
        """Start the embedded broker again: same port, same stored streams or topics."""
        self._engines.embedded_broker().start(self.data_dir)

    def stop_database(self) -> None:
        """Stop the embedded PostgreSQL (fast shutdown); the services lose their connections."""
        self._engines.embedded_postgres().stop()

    def start_database(self) -> None:
        """Start the embedded PostgreSQL again on the same port with the same data."""
        self._engines.embedded_postgres().start()

    # -- internals ---------------------------------------------------------------------------------

    def _remove_connection_file(self) -> None:
        if self._connection_file_written:
            self._connection_file_written = False
            with contextlib.suppress(OSError):
                self.connection_file.unlink()

    def _proc(self, name: str) -> ManagedProcess:
        return self._children.get(name)

    def _child_env(self, proc: ManagedProcess) -> dict[str, str]:
        return child_environment(
            self._env,
            proc,
            self._children.procs,
            engines=self._engines,
            flow=self.flow,
            data_dir=self.data_dir,
            database_roles=self._database_roles,
            platform_id=self._platform_id,
        )
