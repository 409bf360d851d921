"""What every embedded engine does alike: run a program as a child process on a port of its own,
wait until it answers, log to a file, and stop it gracefully, then harder.

PostgreSQL (postgres.py), NATS (brokers.py), Apache Kafka (apache_kafka.py), Jaeger and Prometheus
(observers.py) are all `ChildProcessEngine`s, run the way the platform needs:

- on 127.0.0.1 and on a free port picked here, because the standard ports (5432, 4222, 9092) may
  belong to other software on the machine;
- as children of the caller, in a session of their own (a Ctrl-C meant for the supervisor does not
  kill an engine before the services that use it have drained), so that the supervisor stops them in
  order and knows their pid; they get a signal when the parent dies (Linux), and are stopped at
  interpreter exit, so no engine outlives the run that started it;
- the port is kept across `stop()`/`start()` of the same object, so clients configured with its
  address reconnect to it after a fault test restarts the engine.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ClassVar, Self

import psutil

from sandwich.platform.ports import free_port

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


class EmbeddedEngineError(RuntimeError):
    """An embedded engine could not be prepared, started or stopped (its log tail is in the message)."""


class StopsOnExit:
    """`with thing:` stops it when the block ends, however it ends. `__enter__` returns the object as
    it is; a class that starts on entering says so by overriding it."""

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def log_tail(path: Path | None, *, offset: int | None = None, max_chars: int = 4000) -> str:
    """The end of a log file (from `offset` on, when given): what to show when an engine did not
    come up."""
    if path is None:
        return "(no log)"
    try:
        with path.open("rb") as fh:
            if offset is None:
                fh.seek(0, os.SEEK_END)
                offset = max(0, fh.tell() - max_chars)
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return "(no log)"
    return data.decode("utf-8", "replace")[-max_chars:]


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A preexec hook that makes the child get `sig` when this process dies (Linux only).

    Covers a supervisor killed with SIGKILL, which gets no chance to stop its engines.
    PR_SET_PDEATHSIG fires when the *thread* that forked exits, so it is only armed when starting
    from the main thread (which lives as long as the process); elsewhere the atexit hook is the net.
    It runs after a switch of user (PostgreSQL's account), which would clear it otherwise.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    pr_set_pdeathsig = 1

    def arm() -> None:
        libc.prctl(pr_set_pdeathsig, sig, 0, 0, 0)

    return arm


def wait_dead(procs: list[psutil.Process], timeout: float) -> bool:
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


def terminate(
    pid: int,
    signals: Sequence[signal.Signals],
    *,
    timeout: float,
    popen: subprocess.Popen[bytes] | None = None,
    name: str = "process",
) -> None:
    """Stop a process: each of `signals` in turn (waiting `timeout` seconds after the first, 5 s
    after the others), then SIGKILL; then SIGKILL whatever children it left, so that none keeps a
    port or shared memory (which would block the next start). `popen`, when the process is ours, is
    waited on (and so reaped); otherwise the pid is watched until it is gone."""
    try:
        proc = psutil.Process(pid)
        children = proc.children(recursive=True)
    except psutil.NoSuchProcess:
        if popen is not None:
            popen.wait()
        return

    def wait(seconds: float) -> bool:
        if popen is None:
            return wait_dead([proc], seconds)
        try:
            popen.wait(seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    for step, sig in enumerate(signals):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
        if wait(timeout if step == 0 else 5.0):
            break
        log.warning("%s (pid %s) did not stop after %s; escalating", name, pid, sig.name)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        wait(5.0)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()
    wait_dead(children, 5.0)


_live: dict[int, ChildProcessEngine] = {}
"""Engines whose process runs, by id, in the order they started: stopped at interpreter exit."""


@atexit.register
def _stop_all_at_exit() -> None:
    for engine in reversed(list(_live.values())):
        with contextlib.suppress(Exception):
            engine.stop(timeout=engine.exit_stop_timeout)


class ChildProcessEngine(StopsOnExit):
    """One engine as a child process: `_spawn` starts its command with the output appended to its log
    file, `_wait_ready` waits until it answers, `stop()` asks it to go (`stop_signals`), then kills.

    A subclass provides `_command()` (and, unless an open port means ready, `_answers()`), and calls
    `_launch(log_path)` from its `start()`.
    """

    kind: ClassVar[str] = "engine"
    error: ClassVar[type[EmbeddedEngineError]] = EmbeddedEngineError
    stop_signals: ClassVar[tuple[signal.Signals, ...]] = (signal.SIGTERM,)
    """Signals that ask for a clean shutdown, in order; SIGKILL comes after the last."""
    parent_death_signal: ClassVar[signal.Signals] = signal.SIGTERM
    stop_timeout: ClassVar[float] = 10.0
    exit_stop_timeout: ClassVar[float] = 3.0

    def __init__(self, *, port: int | None = None, host: str = HOST, ready_timeout: float = 20.0) -> None:
        self.host = host
        self._port = port
        self.ready_timeout = ready_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._log_offset = 0
        self._lock = threading.RLock()

    # -- what a subclass provides -------------------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _answers(self) -> bool:
        """Ready: by default, once its port accepts a connection."""
        return port_accepts(self.host, self.port)

    def _start_failure(self, code: int, output: str) -> Exception:
        """The error for a process that exited while starting (`output`: its log since the start)."""
        return self.error(f"the embedded {self.kind} exited with code {code} on start:\n{output}")

    def _not_ready_message(self) -> str:
        return f"the embedded {self.kind} did not accept connections on port {self.port} within {self.ready_timeout}s"

    # -- state ----------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise self.error(f"the embedded {self.kind} has not been started yet")
        return self._port

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    # -- lifecycle ------------------------------------------------------------------------------------
    def _launch(self, log_path: Path | None) -> None:
        """Start on this object's port (a free one the first time), then wait until it answers."""
        with self._lock:
            if self.running:
                return
            if self._port is None:
                self._port = free_port(self.host)
            elif port_accepts(self.host, self._port):
                raise self.error(f"port {self._port} is already taken: cannot start the {self.kind}")
            self._spawn(self._command(), log_path)
            self._wait_ready()

    def _spawn(self, command: list[str], log_path: Path | None, **popen: Any) -> None:
        """Run `command` in a session of its own, its stdout and stderr appended to `log_path`."""
        self._log_path = log_path
        out: IO[bytes] | int = subprocess.DEVNULL
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_offset = log_size(log_path)
            out = log_path.open("ab")
        log.info("starting embedded %s: %s", self.kind, " ".join(command))
        try:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(self.parent_death_signal),
                **popen,
            )
        finally:
            if not isinstance(out, int):
                out.close()
        _live[id(self)] = self

    def _wait_ready(self) -> None:
        """Until `_answers()`; `_start_failure` when the process exits first; stopped, and an error,
        after `ready_timeout` seconds."""
        deadline = time.monotonic() + self.ready_timeout
        while True:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                self._forget()
                raise self._start_failure(code, self.log_since_start())
            if self._answers():
                log.info(
                    "embedded %s ready on %s:%d (pid %d)", self.kind, self.host, self.port, self._proc.pid
                )
                return
            if time.monotonic() > deadline:
                self._terminate(timeout=3.0)
                raise self.error(f"{self._not_ready_message()}:\n{self.log_since_start()}")
            time.sleep(0.05)

    def log_since_start(self) -> str:
        return log_tail(self._log_path, offset=self._log_offset)

    def stop(self, timeout: float | None = None) -> None:
        """Ask for a clean shutdown (`stop_signals`), then SIGKILL after `timeout` seconds
        (`stop_timeout` unless given). Idempotent; `start()` brings it back on the same port."""
        with self._lock:
            self._terminate(self.stop_timeout if timeout is None else timeout)

    def kill(self) -> None:
        """SIGKILL: the engine dies as in a crash (fault tests)."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            self._forget()

    def _terminate(self, timeout: float) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            terminate(proc.pid, self.stop_signals, timeout=timeout, popen=proc, name=f"embedded {self.kind}")
        self._forget()

    def _forget(self) -> None:
        self._proc = None
        _live.pop(id(self), None)
