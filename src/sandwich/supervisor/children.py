"""The platform's supervised children, the services and the mail sink: their ports, the monitor
that restarts what dies (policy in processes.py), and the faults a test injects into them."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from sandwich.platform.ports import free_port
from sandwich.platform.trust import PUBLIC_FRONTS
from sandwich.supervisor.processes import (
    LOCALHOST,
    MAILSINK,
    MONITOR_INTERVAL,
    ManagedProcess,
    PlatformError,
    PlatformStartError,
    can_bind,
    kill_tagged_children,
    terminate_all,
    wait_ready,
)

log = logging.getLogger("sandwich.supervisor")


class Children:
    """Every child of one platform by name. `env_for` builds a child's environment at each (re)start,
    so a restarted service sees what the platform knows then (its peers' ports never change)."""

    def __init__(
        self,
        logs_dir: Path,
        env_for: Callable[[ManagedProcess], Mapping[str, str]],
        *,
        ready_timeout: float,
        stop_timeout: float,
    ) -> None:
        self.logs_dir = logs_dir
        self._env_for = env_for
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.procs: dict[str, ManagedProcess] = {}
        self._monitor: threading.Thread | None = None

    def get(self, name: str) -> ManagedProcess:
        key = name.replace("-", "_")
        try:
            return self.procs[key]
        except KeyError:
            raise PlatformError(f"no such part of the platform: {name!r} (not started yet?)") from None

    def allocate_ports(
        self, services: Sequence[str], host: str, fixed_ports: Mapping[str, int | None]
    ) -> None:
        """Pick each child's port, once per platform: a second start() reuses them."""
        if self.procs:
            for proc in self.procs.values():
                proc.reset()
            return
        for name, port in fixed_ports.items():
            if port is not None and name in services and not can_bind(host, port):
                raise PlatformStartError(
                    f"the {name} port {port} on {host} is taken by another program; choose another port"
                )
        taken = {port for port in fixed_ports.values() if port is not None}
        procs = {MAILSINK: ManagedProcess(MAILSINK, _free_port_but(taken), LOCALHOST, self._log(MAILSINK))}
        for name in services:
            fixed = fixed_ports.get(name)
            port = fixed if fixed is not None else _free_port_but(taken)
            bind = host if name in PUBLIC_FRONTS else LOCALHOST
            procs[name] = ManagedProcess(name, port, bind, self._log(name))
        with self.lock:
            self.procs = procs

    def _log(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def start_all(self) -> None:
        """Spawn every child, start the monitor, and wait until all of them are ready."""
        with self.lock:
            for proc in self.procs.values():
                self.spawn(proc)
        self._monitor = threading.Thread(target=self._monitor_loop, name="sandwich-supervisor", daemon=True)
        self._monitor.start()
        self.wait_ready(list(self.procs), self.ready_timeout)

    def spawn(self, proc: ManagedProcess) -> None:
        proc.spawn(self._env_for(proc))

    def wait_ready(self, names: Iterable[str], timeout: float) -> None:
        wait_ready(self.get, [name.replace("-", "_") for name in names], timeout, self.stopping)

    def stop_all(self, platform_id_env: str, platform_id: str) -> None:
        """Stop the monitor, then every child (SIGTERM, then SIGKILL after `stop_timeout`), and any
        child that carries this platform's id but escaped bookkeeping."""
        self.stopping.set()
        monitor, self._monitor = self._monitor, None
        if monitor is not None and monitor is not threading.current_thread():
            monitor.join(timeout=5.0)
        with self.lock:
            procs = [p for p in self.procs.values() if p.popen is not None]
            for proc in procs:
                proc.held = True
            terminate_all([p.popen for p in procs if p.popen is not None], self.stop_timeout)
            kill_tagged_children(platform_id_env, platform_id)

    def _monitor_loop(self) -> None:
        """Restart children that die unexpectedly, with exponential backoff."""
        while not self.stopping.wait(MONITOR_INTERVAL):
            try:
                self._monitor_once()
            except Exception:
                log.exception("supervisor monitor failed; continuing")

    def _monitor_once(self) -> None:
        now = time.monotonic()
        with self.lock:
            if self.stopping.is_set():
                return
            for proc in self.procs.values():
                if proc.restart_due(now):
                    self.spawn(proc)
                    log.warning("%s restarted (restart #%d, pid %s)", proc.name, proc.restarts, proc.pid)

    # -- faults --------------------------------------------------------------------------------------

    def kill(self, name: str, sig: int, timeout: float | None) -> None:
        """Platform.kill_service: `sig` to the child, held down until `start`."""
        with self.lock:
            proc = self.get(name)
            proc.held = True
            proc.restart_at = None
            popen = proc.popen
        if popen is None or popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            popen.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            terminate_all([popen], self.stop_timeout if timeout is None else timeout, send_term=False)
        log.info("%s (pid %s) killed on purpose with %s", name, popen.pid, signal.Signals(sig).name)

    def start(self, name: str, *, wait: bool) -> None:
        """Platform.start_service: spawn it again, or continue it when it is only frozen."""
        with self.lock:
            proc = self.get(name)
            proc.held = False
            proc.restart_at = None
            proc.failures = 0
            if proc.alive:
                assert proc.popen is not None
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.send_signal(signal.SIGCONT)
            else:
                self.spawn(proc)
        if wait:
            self.wait_ready([name], self.ready_timeout)

    def add_replica(self, service: str) -> str:
        """Platform.add_replica: one more process of `service`, named `service#N`."""
        with self.lock:
            number = 1 + sum(1 for proc in self.procs.values() if proc.service_name == service)
            name = f"{service}#{number}"
            log_path = self.logs_dir / f"{service}-{number}.log"
            proc = ManagedProcess(name, free_port(), LOCALHOST, log_path, service=service)
            self.procs[name] = proc
            self.spawn(proc)
        self.wait_ready([name], self.ready_timeout)
        return name


def _free_port_but(taken: set[int]) -> int:
    """A free port none of the platform's other children got (noted in `taken`)."""
    while True:
        port = free_port()
        if port not in taken:
            taken.add(port)
            return port
