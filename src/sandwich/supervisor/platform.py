"""The whole platform on one machine: engines, mail sink and every service, supervised.

`Platform` is what `sandwich up` runs, and what integration and end-to-end tests use in-process, so
that the platform a developer clicks through is exactly the one the tests exercise. It is
deliberately synchronous (subprocesses plus one monitor thread): a pytest fixture can start it,
kill a service or the broker in the middle of a test, and stop it, without an event loop.

Each service is a separate OS process (`python -m sandwich.cli.serve NAME`), configured only by
environment variables, exactly as in a container. A service that dies is restarted on the same port
with exponential backoff, unless a test killed it on purpose (`kill_service`). Whatever happens
during start-up or shutdown, no process is left behind: children are terminated in order (services,
then broker, then database) and SIGKILLed if they do not go; children also watch the supervisor's pid
and exit on their own if it is killed outright.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
import psutil

from sandwich.cli.serve import SUPERVISOR_PID_ENV
from sandwich.platform import db_roles
from sandwich.platform.embedded import kafka_access, nats_access
from sandwich.platform.embedded.apache_kafka import EmbeddedApacheKafka
from sandwich.platform.embedded.brokers import EmbeddedBrokerError, EmbeddedNats
from sandwich.platform.embedded.postgres import EmbeddedPostgres, FileLock
from sandwich.platform.ports import free_port
from sandwich.platform.sealing import ensure_sealing_key, service_sealing_keys
from sandwich.platform.service_auth import ensure_service_keys
from sandwich.platform.settings import SERVICES, Broker, Flow, service_url_env
from sandwich.platform.trust import PUBLIC_FRONTS, bus_users

log = logging.getLogger("sandwich.supervisor")

MAILSINK = "mailsink"
ADMIN_BROKER_USER = nats_access.ADMIN_USER
LOCALHOST = "127.0.0.1"
_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}

CONNECTION_FILE = "platform.json"
"""DATA_DIR/platform.json while the platform runs: where its database, broker and gateway are (and the
prefixes), so tools such as `sandwich replay` can reach the running platform. Removed on stop."""

PLATFORM_ID_ENV = "SANDWICH_PLATFORM_ID"
"""Set in every child: lets stop() find children of this Platform even if their Popen was lost."""

# Restart policy: 0.5 s, 1 s, 2 s, ... up to 30 s between attempts; a process that stayed up for
# STABLE_AFTER seconds is considered healthy again and its next crash starts over at 0.5 s.
BACKOFF_BASE = 0.5
BACKOFF_MAX = 30.0
STABLE_AFTER = 30.0
# A process that dies this often while the platform starts will not become ready: fail fast.
STARTUP_DEATHS_LIMIT = 3
MONITOR_INTERVAL = 0.2

BACKGROUND = frozenset({"kitchen", "delivery", "basket", MAILSINK})
"""Processes whose work follows an order rather than answers it (fulfilment, the mail sink). They
run at a lower CPU priority (SANDWICH_BACKGROUND_NICE, default 5; 0 for none), so that on a busy
machine the request path (gateway, orders, billing, the broker, the database) and the consumers a
customer watches (order_info, notifications) get the CPU first: with two cores 85% busy, each hop
of an order otherwise queued behind work nobody waits for (create p99 at 100 orders/s: ~170 ms,
~75 ms with this). A deployment does the same with its scheduler's CPU weights."""
BACKGROUND_NICE_ENV = "SANDWICH_BACKGROUND_NICE"
DEFAULT_BACKGROUND_NICE = 5


class PlatformError(RuntimeError):
    """Something the platform could not do (start, restart a part, ...)."""


class PlatformStartError(PlatformError):
    """The platform did not become ready; the message says which part and shows its log tail."""


@dataclass
class ManagedProcess:
    """One supervised child: a service or the mail sink, with a fixed port for its whole life."""

    name: str
    port: int
    bind_host: str
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    held: bool = False  # stopped on purpose: the monitor must not restart it
    restarts: int = 0
    failures: int = 0  # consecutive early deaths, drives the backoff
    started_at: float = 0.0
    restart_at: float | None = None
    exit_codes: list[int] = field(default_factory=list)
    service: str = ""  # the service it runs, when its name is a replica's ("order_info#2")

    @property
    def service_name(self) -> str:
        return self.service or self.name

    @property
    def url(self) -> str:
        host = LOCALHOST if self.bind_host in _WILDCARD_HOSTS else self.bind_host
        return f"http://{_url_host(host)}:{self.port}"

    @property
    def pid(self) -> int | None:
        if self.popen is None or self.popen.poll() is not None:
            return None
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.pid is not None


@dataclass(frozen=True)
class Component:
    """One line of the status table that `sandwich up` prints."""

    name: str
    kind: str
    address: str
    pid: int | None
    log: Path | None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file (what to show when a part did not come up)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read()
    except OSError:
        return "(no log)"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


class Platform:
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
        self.broker_kind = Broker(broker)
        self.host = host
        self.gateway_port = gateway_port
        self.apps_port = apps_port
        self.services: tuple[str, ...] = tuple(services)
        unknown = set(self.services) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown services: {', '.join(sorted(unknown))}")
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.logs_dir = self.data_dir / "logs"
        self.mail_dir = self.data_dir / "mail"
        self._env: dict[str, str] = {**os.environ, **(env_overrides or {})}
        self._platform_id = uuid.uuid4().hex
        self._lock = threading.RLock()
        # One platform per data directory: two would fight over the database and broker files.
        self._dir_lock = FileLock(self.data_dir / "platform.lock")
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None
        self._procs: dict[str, ManagedProcess] = {}
        self._postgres: EmbeddedPostgres | None = None
        self._database_roles: dict[str, str] = {}
        # The services that have a user of their own on the embedded broker (none on an external one).
        self._broker_users: set[str] = set()
        self._broker: EmbeddedNats | EmbeddedApacheKafka | None = None
        # Decided once: a restart of this object must not mistake its own engines for external ones.
        self._external_database_url = self._env.get("DATABASE_URL", "")
        self._external_nats_url = self._env.get("NATS_URL", "")
        self._external_kafka = self._env.get("KAFKA_BOOTSTRAP_SERVERS", "")
        self._database_url = self._external_database_url
        self._nats_url = self._external_nats_url if self.flow is not Flow.SYNC else ""
        self._kafka_bootstrap = self._external_kafka if self.flow is not Flow.SYNC else ""
        if self._external_kafka:
            self.broker_kind = Broker.KAFKA
        elif self._external_nats_url:
            self.broker_kind = Broker.NATS
        self._started = False
        self._connection_file_written = False

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
    def database_url(self) -> str:
        """The server's URL as its administrator (the superuser of the embedded one): what `sandwich
        migrate` uses, and what services get when they cannot have roles of their own."""
        if not self._database_url:
            raise PlatformError("the platform has no database yet (not started)")
        return self._database_url

    @property
    def nats_url(self) -> str | None:
        """The NATS URL the services get, or None (sync flow, or Kafka configured)."""
        return self._nats_url or None

    def _broker_password_file(self, user: str) -> Path:
        access = kafka_access if self.broker_kind is Broker.KAFKA else nats_access
        return access.password_file(self.secrets_dir, user)

    @property
    def broker_admin(self) -> tuple[str, Path] | None:
        """The embedded broker's admin user and its password file (None for an external broker,
        whose clients connect as its URL says)."""
        if not self._broker_users:
            return None
        return ADMIN_BROKER_USER, self._broker_password_file(ADMIN_BROKER_USER)

    @property
    def nats_admin_url(self) -> str | None:
        """The NATS URL with the admin's credentials (the embedded server asks every client who it
        is), for the platform's own tools; the URL as it is for an external server."""
        if not self._nats_url or not self._broker_users:
            return self.nats_url
        password = nats_access.ensure_password(self.secrets_dir, ADMIN_BROKER_USER)
        return self._nats_url.replace("nats://", f"nats://{ADMIN_BROKER_USER}:{password}@", 1)

    @property
    def smtp_address(self) -> tuple[str, int]:
        return LOCALHOST, self._proc(MAILSINK).port

    @property
    def postgres(self) -> EmbeddedPostgres | None:
        return self._postgres

    @property
    def kafka_bootstrap_servers(self) -> str | None:
        """The Kafka bootstrap servers the services get, or None (sync flow, or NATS)."""
        return self._kafka_bootstrap or None

    @property
    def broker(self) -> EmbeddedNats | EmbeddedApacheKafka | None:
        """The embedded broker, when this platform runs one."""
        return self._broker

    @property
    def running(self) -> bool:
        return self._started

    def components(self) -> list[Component]:
        """What runs where, for the status table."""
        rows: list[Component] = []
        if self._postgres is not None:
            rows.append(
                Component(
                    "postgres", "database", self._postgres.url, self._postgres.pid, self._postgres.log_path
                )
            )
        elif self._database_url:
            rows.append(Component("postgres", "database (external)", self._database_url, None, None))
        if self._broker is not None:
            address = self._nats_url or self._kafka_bootstrap
            kind = self.broker_kind.value
            rows.append(Component(kind, "broker", address, self._broker.pid, self._broker.log_path))
        elif self._nats_url:
            rows.append(Component("nats", "broker (external)", self._nats_url, None, None))
        elif self._kafka_bootstrap:
            rows.append(Component("kafka", "broker (external)", self._kafka_bootstrap, None, None))
        with self._lock:
            for proc in self._procs.values():
                if proc.name == MAILSINK:
                    rows.append(
                        Component(
                            MAILSINK, "smtp sink", f"smtp://{LOCALHOST}:{proc.port}", proc.pid, proc.log_path
                        )
                    )
                else:
                    rows.append(Component(proc.name, "service", proc.url, proc.pid, proc.log_path))
        return rows

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start everything and return once every service answers GET /health/ready.

        Raises PlatformStartError (after stopping whatever was started) when some part is not ready
        within `ready_timeout` seconds.
        """
        with self._lock:
            if self._started:
                return
            self._stopping.clear()
        began = time.monotonic()
        holder = self._dir_lock.acquire()
        if holder is not None:
            raise PlatformStartError(f"{self.data_dir} is in use by another platform (pid {holder})")
        try:
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            self.mail_dir.mkdir(parents=True, exist_ok=True)
            self._start_database()
            self._start_broker_if_needed()
            ensure_service_keys(self.secrets_dir, self.services)
            for sealing_key in service_sealing_keys(self.secrets_dir):
                ensure_sealing_key(sealing_key)
            self._allocate_ports()
            self._migrate_databases()
            with self._lock:
                for proc in self._procs.values():
                    self._spawn(proc)
            self._monitor = threading.Thread(
                target=self._monitor_loop, name="sandwich-supervisor", daemon=True
            )
            self._monitor.start()
            self._wait_ready(list(self._procs), self.ready_timeout)
            self._write_connection_file()
            self._started = True
            log.info("platform ready in %.1fs: gateway at %s", time.monotonic() - began, self.gateway_url)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop everything: services and mail sink (SIGTERM, then SIGKILL after `stop_timeout`), the
        broker, the database. Idempotent, and safe after a start that failed halfway."""
        self._stopping.set()
        self._remove_connection_file()
        monitor, self._monitor = self._monitor, None
        if monitor is not None and monitor is not threading.current_thread():
            monitor.join(timeout=5.0)
        with self._lock:
            procs = [p for p in self._procs.values() if p.popen is not None]
            for proc in procs:
                proc.held = True
            _terminate_all([p.popen for p in procs if p.popen is not None], self.stop_timeout)
            self._kill_tagged_children()
            self._started = False
        errors: list[str] = []
        if self._broker is not None:
            try:
                self._broker.stop()
            except Exception as exc:
                errors.append(f"broker: {exc!r}")
        if self._postgres is not None:
            try:
                self._postgres.stop()
            except Exception as exc:
                errors.append(f"postgres: {exc!r}")
        for error in errors:
            log.error("while stopping the platform: %s", error)
        self._dir_lock.release()

    def __enter__(self) -> Platform:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- fault injection ---------------------------------------------------------------------------

    def kill_service(self, name: str, sig: int = signal.SIGKILL, *, timeout: float | None = None) -> None:
        """Send `sig` to a service (or the mail sink) and keep it down until start_service().

        For terminating signals this waits until the process is gone (SIGKILL after `timeout`); with
        SIGSTOP the process stays, frozen, which is how a hung service looks to its peers.
        """
        with self._lock:
            proc = self._proc(name)
            proc.held = True
            proc.restart_at = None
            popen = proc.popen
        if popen is None or popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            popen.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            _terminate_all([popen], self.stop_timeout if timeout is None else timeout, send_term=False)
        log.info("%s (pid %s) killed on purpose with %s", name, popen.pid, signal.Signals(sig).name)

    def start_service(self, name: str, *, wait: bool = True) -> None:
        """Bring back a service stopped by kill_service(): same port, same environment. A frozen
        (SIGSTOPped) process is continued instead. Waits until it is ready unless wait=False."""
        with self._lock:
            proc = self._proc(name)
            proc.held = False
            proc.restart_at = None
            proc.failures = 0
            if proc.alive:
                assert proc.popen is not None
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.send_signal(signal.SIGCONT)
            else:
                self._spawn(proc)
        if wait:
            self._wait_ready([name], self.ready_timeout)

    def add_replica(self, service: str) -> str:
        """Start one more process of `service` (a port and log of its own, the same database and
        consumer groups) and wait until it is ready. Returns its name (`service#N`), which
        kill_service() and start_service() take; the gateway keeps calling the first process."""
        with self._lock:
            if service not in self.services:
                raise PlatformError(f"{service} does not run in this platform")
            number = 1 + sum(1 for proc in self._procs.values() if proc.service_name == service)
            name = f"{service}#{number}"
            proc = ManagedProcess(
                name, free_port(), LOCALHOST, self.logs_dir / f"{service}-{number}.log", service=service
            )
            self._procs[name] = proc
            self._spawn(proc)
        self._wait_ready([name], self.ready_timeout)
        return name

    def restart_service(self, name: str, sig: int = signal.SIGTERM) -> None:
        self.kill_service(name, sig)
        self.start_service(name)

    def stop_broker(self) -> None:
        """Stop the embedded broker (the services see it go down)."""
        if self._broker is None:
            raise PlatformError("no embedded broker runs in this platform (sync flow or external broker)")
        self._broker.stop()

    def start_broker(self) -> None:
        """Start the embedded broker again: same port, same stored streams or topics."""
        if self._broker is None:
            raise PlatformError("no embedded broker runs in this platform (sync flow or external broker)")
        self._broker.start(self._broker_data_dir)

    def stop_database(self) -> None:
        """Stop the embedded PostgreSQL (fast shutdown); the services lose their connections."""
        if self._postgres is None:
            raise PlatformError("no embedded PostgreSQL runs in this platform (DATABASE_URL was given)")
        self._postgres.stop()

    def start_database(self) -> None:
        """Start the embedded PostgreSQL again on the same port with the same data."""
        if self._postgres is None:
            raise PlatformError("no embedded PostgreSQL runs in this platform (DATABASE_URL was given)")
        self._postgres.start()

    # -- internals ---------------------------------------------------------------------------------

    @property
    def _broker_data_dir(self) -> Path:
        return self.data_dir

    @property
    def secrets_dir(self) -> Path:
        """The services' keys (platform/service_auth.py): made at the first start, 0600 in 0700."""
        return Path(self._env.get("SANDWICH_SECRETS_DIR") or self.data_dir / "secrets")

    @property
    def connection_file(self) -> Path:
        return self.data_dir / CONNECTION_FILE

    def connection_info(self) -> dict[str, str]:
        """What platform.json holds: enough for a client of the platform's engines to find them."""
        broker = self.flow is not Flow.SYNC
        return {
            "database_url": self._database_url,
            "nats_url": self._nats_url if broker else "",
            "kafka_bootstrap_servers": self._kafka_bootstrap if broker else "",
            "db_prefix": self._env.get("SANDWICH_DB_PREFIX", "sandwich"),
            "topic_prefix": self._env.get("SANDWICH_TOPIC_PREFIX", ""),
            "gateway_url": self.gateway_url,
            "flow": self.flow.value,
            # The broker's admin, for the platform's own tools (replay): a password file, 0600.
            "broker_user": self.broker_admin[0] if broker and self.broker_admin else "",
            "broker_password_file": str(self.broker_admin[1]) if broker and self.broker_admin else "",
        }

    def _write_connection_file(self) -> None:
        # Owner-only: the database URL may carry a password. Written whole, then renamed into place.
        path = self.connection_file
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(self.connection_info(), fh, indent=2)
            os.replace(temporary, path)
            self._connection_file_written = True
        except OSError as exc:
            log.warning("could not write %s: %s", path, exc)

    def _remove_connection_file(self) -> None:
        if self._connection_file_written:
            self._connection_file_written = False
            with contextlib.suppress(OSError):
                self.connection_file.unlink()

    def _proc(self, name: str) -> ManagedProcess:
        key = name.replace("-", "_")
        try:
            return self._procs[key]
        except KeyError:
            raise PlatformError(f"no such part of the platform: {name!r} (not started yet?)") from None

    def _start_database(self) -> None:
        if self._external_database_url:
            log.info("using the PostgreSQL server from DATABASE_URL")
            return
        began = time.monotonic()
        if self._postgres is None:
            self._postgres = EmbeddedPostgres(self.data_dir)
        self._postgres.start()
        self._database_url = self._postgres.url
        log.info("embedded PostgreSQL ready in %.2fs at %s", time.monotonic() - began, self._database_url)

    def _start_broker_if_needed(self) -> None:
        if self.flow is Flow.SYNC:
            log.info("sync flow: no broker")
            return
        if self._external_nats_url or self._external_kafka:
            log.info("using the broker from the environment")
            return
        began = time.monotonic()
        prefix = self._env.get("SANDWICH_TOPIC_PREFIX", "")
        if self._broker is None:
            self._broker = (
                EmbeddedApacheKafka(
                    users=kafka_access.users(self.secrets_dir), admin_user=kafka_access.ADMIN_USER
                )
                if self.broker_kind is Broker.KAFKA
                else EmbeddedNats(authorization=nats_access.authorization(self.secrets_dir, prefix))
            )
        try:
            self._broker.start(self._broker_data_dir)
            if isinstance(self._broker, EmbeddedApacheKafka):
                admin_password = kafka_access.ensure_password(self.secrets_dir, kafka_access.ADMIN_USER)
                granted = kafka_access.grant_in_thread(self._broker.bootstrap_servers, admin_password, prefix)
                log.info("kafka ACLs in place: %d", granted)
        except EmbeddedBrokerError as exc:  # a missing Java or Maven, or a broker that did not come up
            raise PlatformStartError(
                f"the embedded {self.broker_kind.value} broker did not start: {exc}"
            ) from exc
        self._broker_users = set(bus_users())
        if isinstance(self._broker, EmbeddedApacheKafka):
            self._kafka_bootstrap = self._broker.bootstrap_servers
        else:
            self._nats_url = self._broker.url
        address = self._kafka_bootstrap or self._nats_url
        log.info(
            "embedded %s ready in %.2fs at %s", self.broker_kind.value, time.monotonic() - began, address
        )

    def _allocate_ports(self) -> None:
        """Pick each child's port, once per Platform object: a second start() reuses them."""
        if self._procs:
            for proc in self._procs.values():
                proc.held, proc.failures, proc.restart_at, proc.popen = False, 0, None, None
                proc.exit_codes.clear()
            return
        taken: set[int] = set()

        def pick(fixed: int | None = None) -> int:
            if fixed is not None:
                taken.add(fixed)
                return fixed
            while True:
                port = free_port()
                if port not in taken:
                    taken.add(port)
                    return port

        fixed_ports = {"gateway": self.gateway_port, "web": self.apps_port}
        for name, port in fixed_ports.items():
            if port is not None and name in self.services and not _can_bind(self.host, port):
                raise PlatformStartError(
                    f"the {name} port {port} on {self.host} is taken by another program; choose another port"
                )
        procs: dict[str, ManagedProcess] = {}
        procs[MAILSINK] = ManagedProcess(MAILSINK, pick(), LOCALHOST, self.logs_dir / f"{MAILSINK}.log")
        for name in self.services:
            fixed = fixed_ports.get(name)
            bind = self.host if name in PUBLIC_FRONTS else LOCALHOST
            procs[name] = ManagedProcess(name, pick(fixed), bind, self.logs_dir / f"{name}.log")
        with self._lock:
            self._procs = procs

    def _child_env(self, proc: ManagedProcess) -> dict[str, str]:
        env = dict(self._env)
        env.update(
            SANDWICH_SERVICE=proc.service_name,
            SANDWICH_HOST=proc.bind_host,
            SANDWICH_PORT=str(proc.port),
            SANDWICH_FLOW=self.flow.value,
            SANDWICH_DATA_DIR=str(self.data_dir),
            SANDWICH_SMTP_HOST=LOCALHOST,
            SANDWICH_SMTP_PORT=str(self._procs[MAILSINK].port),
            DATABASE_URL=self._service_database_url(proc.service_name),
            SANDWICH_SECRETS_DIR=str(self.secrets_dir),
            PYTHONUNBUFFERED="1",
        )
        env[SUPERVISOR_PID_ENV] = str(os.getpid())
        env[PLATFORM_ID_ENV] = self._platform_id
        if self._kafka_bootstrap:
            env["KAFKA_BOOTSTRAP_SERVERS"] = self._kafka_bootstrap
            env.pop("NATS_URL", None)
        elif self._nats_url:
            env["NATS_URL"] = self._nats_url
        env.pop("SANDWICH_BROKER_USER", None)
        env.pop("SANDWICH_BROKER_PASSWORD_FILE", None)
        if proc.service_name in self._broker_users:
            env["SANDWICH_BROKER_USER"] = proc.service_name
            env["SANDWICH_BROKER_PASSWORD_FILE"] = str(self._broker_password_file(proc.service_name))
        for name, other in self._procs.items():
            if name in SERVICES:
                env[service_url_env(name)] = other.url
        return env

    @property
    def database_roles_dir(self) -> Path:
        """Where each service's PostgreSQL password file is (0600): `sandwich migrate` writes them."""
        return self.secrets_dir / "postgres"

    def _service_database_url(self, service: str) -> str:
        """The service's own role and database when the migration made roles; else the shared URL.
        A service without a database of its own (the gateway) then gets none."""
        if not self._database_roles:
            return self._database_url
        role = self._database_roles.get(service)
        return db_roles.service_url(self._database_url, role, self.database_roles_dir) if role else ""

    def _migrate_databases(self) -> None:
        """`sandwich migrate` in a process of its own before the services start: they then find their
        databases up to date and never load Alembic (about 10 MB less in each of them)."""
        log_path = self.logs_dir / "migrate.log"
        env = dict(self._env)
        env.update(
            DATABASE_URL=self._database_url, SANDWICH_DATA_DIR=str(self.data_dir), PYTHONUNBUFFERED="1"
        )
        with log_path.open("ab") as log_file:
            try:
                done = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "sandwich.cli.main",
                        "migrate",
                        "--service-roles",
                        str(self.database_roles_dir),
                    ],
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    timeout=self.ready_timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise PlatformStartError(
                    f"migrations took over {exc.timeout:.0f}s:\n{tail(log_path)}"
                ) from exc
        if done.returncode != 0:
            raise PlatformStartError(f"migrations failed (exit {done.returncode}):\n{tail(log_path)}")
        self._database_roles = db_roles.read_roles(self.database_roles_dir)

    def _spawn(self, proc: ManagedProcess) -> None:
        """Start (or restart) one child; its stdout and stderr are appended to its log file."""
        command = [sys.executable, "-m", "sandwich.cli.serve", proc.service_name, "--port", str(proc.port)]
        with proc.log_path.open("ab") as log_file:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            log_file.write(f"=== {stamp} supervisor: starting {proc.name} on port {proc.port} ===\n".encode())
            log_file.flush()
            # Own session: Ctrl-C in the terminal reaches only the supervisor, which stops the
            # children in order instead of all of them racing each other.
            proc.popen = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._child_env(proc),
                start_new_session=True,
            )
        self._lower_priority(proc)
        proc.started_at = time.monotonic()

    def _lower_priority(self, proc: ManagedProcess) -> None:
        """Background processes (BACKGROUND) get a higher niceness, set while the child is still
        starting up: the threads it makes later inherit it."""
        if proc.service_name not in BACKGROUND or proc.popen is None:
            return
        try:
            nice = int(self._env.get(BACKGROUND_NICE_ENV, DEFAULT_BACKGROUND_NICE))
        except ValueError:
            nice = DEFAULT_BACKGROUND_NICE
        if nice > 0:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, proc.popen.pid, min(19, nice))

    def _monitor_loop(self) -> None:
        """Restart children that die unexpectedly, with exponential backoff."""
        while not self._stopping.wait(MONITOR_INTERVAL):
            try:
                self._monitor_once()
            except Exception:
                log.exception("supervisor monitor failed; continuing")

    def _monitor_once(self) -> None:
        now = time.monotonic()
        with self._lock:
            if self._stopping.is_set():
                return
            for proc in self._procs.values():
                if proc.held or proc.popen is None:
                    continue
                code = proc.popen.poll()
                if code is None:
                    if proc.failures and now - proc.started_at > STABLE_AFTER:
                        proc.failures = 0
                    continue
                if proc.restart_at is None:
                    uptime = now - proc.started_at
                    proc.failures = proc.failures + 1 if uptime < STABLE_AFTER else 1
                    proc.exit_codes.append(code)
                    delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (proc.failures - 1))
                    proc.restart_at = now + delay
                    message = (
                        f"{proc.name} (pid {proc.popen.pid}) exited with code {code} after {uptime:.1f}s; "
                        f"restarting in {delay:.1f}s"
                    )
                    log.warning(message)
                    _append_line(proc.log_path, f"=== supervisor: {message} ===")
                elif now >= proc.restart_at:
                    proc.restart_at = None
                    proc.restarts += 1
                    self._spawn(proc)
                    log.warning("%s restarted (restart #%d, pid %s)", proc.name, proc.restarts, proc.pid)

    def _wait_ready(self, names: Iterable[str], timeout: float) -> None:
        pending = [name.replace("-", "_") for name in names]
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while pending:
                if self._stopping.is_set():
                    raise PlatformStartError("the platform was stopped while starting")
                for name in list(pending):
                    proc = self._proc(name)
                    if self._is_ready(client, proc):
                        pending.remove(name)
                        log.info("%s ready at %s", name, proc.url)
                    elif proc.failures >= STARTUP_DEATHS_LIMIT:
                        raise PlatformStartError(self._not_ready_report([name], f"{name} keeps dying"))
                if pending and time.monotonic() > deadline:
                    raise PlatformStartError(
                        self._not_ready_report(
                            pending, f"not ready after {timeout:.0f}s: {', '.join(pending)}"
                        )
                    )
                if pending:
                    time.sleep(0.1)

    def _is_ready(self, client: httpx.Client, proc: ManagedProcess) -> bool:
        if not proc.alive:
            return False
        if proc.name == MAILSINK:
            return _smtp_answers(LOCALHOST, proc.port)
        try:
            return client.get(f"{proc.url}/health/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def _not_ready_report(self, names: Sequence[str], headline: str) -> str:
        parts = [headline]
        for name in names:
            proc = self._proc(name)
            codes = ", ".join(str(c) for c in proc.exit_codes) or "none"
            parts.append(
                f"\n--- {name}: pid {proc.pid}, exit codes so far: {codes}; last lines of {proc.log_path}:\n"
                f"{tail(proc.log_path)}"
            )
        return "\n".join(parts)

    def _kill_tagged_children(self) -> None:
        """Kill any child of this process that carries our platform id but escaped bookkeeping (a
        signal between fork and recording the Popen, for instance)."""
        leftovers: list[psutil.Process] = []
        for child in psutil.Process().children(recursive=False):
            with contextlib.suppress(psutil.Error):
                if child.environ().get(PLATFORM_ID_ENV) == self._platform_id:
                    leftovers.append(child)
        for child in leftovers:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(leftovers, timeout=5.0)


def _append_line(path: Path, line: str) -> None:
    with contextlib.suppress(OSError), path.open("ab") as fh:
        fh.write(line.encode() + b"\n")


def _can_bind(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As uvicorn does: a port in TIME_WAIT after our own earlier run counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError:
            return False
    return True


def _smtp_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.settimeout(1.0)
            banner = sock.recv(512)
            with contextlib.suppress(OSError):
                sock.sendall(b"QUIT\r\n")
            return banner.startswith(b"220")
    except OSError:
        return False


def _terminate_all(
    popens: Sequence[subprocess.Popen[bytes]], timeout: float, *, send_term: bool = True
) -> None:
    """SIGTERM every process (and continue frozen ones so they can act on it), wait up to `timeout`
    seconds in total, then SIGKILL what is left together with any children they started."""
    descendants: list[psutil.Process] = []
    for popen in popens:
        if popen.poll() is not None:
            continue
        with contextlib.suppress(psutil.Error):
            descendants.extend(psutil.Process(popen.pid).children(recursive=True))
        if send_term:
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(signal.SIGTERM)
                popen.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + timeout
    for popen in popens:
        remaining = max(0.0, deadline - time.monotonic())
        try:
            popen.wait(remaining)
        except subprocess.TimeoutExpired:
            log.warning("pid %s did not stop within %.0fs; killing it", popen.pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                popen.kill()
            popen.wait()
    for child in descendants:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(descendants, timeout=5.0)
