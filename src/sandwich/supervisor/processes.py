"""The supervised children (services and the mail sink): how one is started, how it is stopped, and
when one that died is started again.

Restart policy: 0.5 s, 1 s, 2 s, ... up to 30 s between attempts; a process that stayed up for
STABLE_AFTER seconds is considered healthy again and its next crash starts over at 0.5 s.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

log = logging.getLogger("sandwich.supervisor")

MAILSINK = "mailsink"
LOCALHOST = "127.0.0.1"
_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}

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
        return f"http://{url_host(host)}:{self.port}"

    @property
    def pid(self) -> int | None:
        if self.popen is None or self.popen.poll() is not None:
            return None
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.pid is not None

    def reset(self) -> None:
        """Forget the last run's state (a second start() of the same platform reuses the port)."""
        self.held, self.failures, self.restart_at, self.popen = False, 0, None, None
        self.exit_codes.clear()

    def spawn(self, env: Mapping[str, str]) -> None:
        """Start (or restart) the child; its stdout and stderr are appended to its log file."""
        command = [sys.executable, "-m", "sandwich.cli.serve", self.service_name, "--port", str(self.port)]
        with self.log_path.open("ab") as log_file:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            log_file.write(f"=== {stamp} supervisor: starting {self.name} on port {self.port} ===\n".encode())
            log_file.flush()
            # Own session: Ctrl-C in the terminal reaches only the supervisor, which stops the
            # children in order instead of all of them racing each other.
            self.popen = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                start_new_session=True,
            )
        self._lower_priority(env)
        self.started_at = time.monotonic()

    def _lower_priority(self, env: Mapping[str, str]) -> None:
        """Background processes (BACKGROUND) get a higher niceness, set while the child is still
        starting up: the threads it makes later inherit it."""
        if self.service_name not in BACKGROUND or self.popen is None:
            return
        try:
            nice = int(env.get(BACKGROUND_NICE_ENV, DEFAULT_BACKGROUND_NICE))
        except ValueError:
            nice = DEFAULT_BACKGROUND_NICE
        if nice > 0:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, self.popen.pid, min(19, nice))

    def restart_due(self, now: float) -> bool:
        """One look of the monitor at this child: True when it died and its backoff is over (the
        caller then spawns it again). A death is counted once and logged with the delay it gets."""
        if self.held or self.popen is None:
            return False
        code = self.popen.poll()
        if code is None:
            if self.failures and now - self.started_at > STABLE_AFTER:
                self.failures = 0
            return False
        if self.restart_at is None:
            uptime = now - self.started_at
            self.failures = self.failures + 1 if uptime < STABLE_AFTER else 1
            self.exit_codes.append(code)
            delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (self.failures - 1))
            self.restart_at = now + delay
            message = (
                f"{self.name} (pid {self.popen.pid}) exited with code {code} after {uptime:.1f}s; "
                f"restarting in {delay:.1f}s"
            )
            log.warning(message)
            _append_line(self.log_path, f"=== supervisor: {message} ===")
            return False
        if now < self.restart_at:
            return False
        self.restart_at = None
        self.restarts += 1
        return True


def url_host(host: str) -> str:
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


def _append_line(path: Path, line: str) -> None:
    with contextlib.suppress(OSError), path.open("ab") as fh:
        fh.write(line.encode() + b"\n")


def can_bind(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As uvicorn does: a port in TIME_WAIT after our own earlier run counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError:
            return False
    return True


def smtp_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.settimeout(1.0)
            banner = sock.recv(512)
            with contextlib.suppress(OSError):
                sock.sendall(b"QUIT\r\n")
            return banner.startswith(b"220")
    except OSError:
        return False


def terminate_all(
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


def kill_tagged_children(env_name: str, value: str) -> None:
    """Kill any child of this process whose environment has `env_name` = `value` but that escaped
    bookkeeping (a signal between fork and recording the Popen, for instance)."""
    leftovers: list[psutil.Process] = []
    for child in psutil.Process().children(recursive=False):
        with contextlib.suppress(psutil.Error):
            if child.environ().get(env_name) == value:
                leftovers.append(child)
    for child in leftovers:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(leftovers, timeout=5.0)


def wait_ready(
    proc_of: Callable[[str], ManagedProcess], names: Sequence[str], timeout: float, stopping: threading.Event
) -> None:
    """Return once every child in `names` is ready (a service answers GET /health/ready, the mail
    sink greets over SMTP); PlatformStartError, with their log tails, when one keeps dying or
    `timeout` seconds pass first, or when the platform is stopped meanwhile."""
    pending = list(names)
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while pending:
            if stopping.is_set():
                raise PlatformStartError("the platform was stopped while starting")
            for name in list(pending):
                proc = proc_of(name)
                if _is_ready(client, proc):
                    pending.remove(name)
                    log.info("%s ready at %s", name, proc.url)
                elif proc.failures >= STARTUP_DEATHS_LIMIT:
                    raise PlatformStartError(_not_ready_report(proc_of, [name], f"{name} keeps dying"))
            if pending and time.monotonic() > deadline:
                headline = f"not ready after {timeout:.0f}s: {', '.join(pending)}"
                raise PlatformStartError(_not_ready_report(proc_of, pending, headline))
            if pending:
                time.sleep(0.1)


def _is_ready(client: httpx.Client, proc: ManagedProcess) -> bool:
    if not proc.alive:
        return False
    if proc.name == MAILSINK:
        return smtp_answers(LOCALHOST, proc.port)
    try:
        return client.get(f"{proc.url}/health/ready").status_code == 200
    except httpx.HTTPError:
        return False


def _not_ready_report(proc_of: Callable[[str], ManagedProcess], names: Sequence[str], headline: str) -> str:
    parts = [headline]
    for name in names:
        proc = proc_of(name)
        codes = ", ".join(str(c) for c in proc.exit_codes) or "none"
        parts.append(
            f"\n--- {name}: pid {proc.pid}, exit codes so far: {codes}; last lines of {proc.log_path}:\n"
            f"{tail(proc.log_path)}"
        )
    return "\n".join(parts)
