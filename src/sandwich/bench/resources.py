"""CPU seconds and memory of every process of the platform, sampled while the benchmark runs.

`ResourceSampler` reads them every 0.5 s in a thread of its own; `discover_platform` finds the
processes of a platform the benchmark did not start."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import psutil

ProcessGroups = Callable[[], Mapping[str, Sequence[int]]]
"""Group name (a service, `postgres`, the broker: `nats` or `kafka`, ...) -> the pids at its root now."""

BENCH_GROUP = "bench"  # the load generator itself


OTHER_GROUP = "other processes"  # the rest of the machine's busy CPU time


MACHINE = "_machine"


@dataclass
class ResourceSample:
    t: float  # monotonic
    cpu: dict[str, float]  # cumulative CPU seconds of every process ever seen in the group
    rss: dict[str, float]  # bytes, summed over the group's processes now


class ResourceSampler:
    """Samples CPU seconds and RSS of process groups every `interval` seconds in a thread.

    Groups listed in `with_children` include every descendant (PostgreSQL's backends). A pid seen
    once keeps counting with its last CPU reading after it exits, so a killed and restarted service
    still adds up.
    """

    def __init__(
        self, groups: ProcessGroups, *, interval: float = 0.5, with_children: Iterable[str] = ("postgres",)
    ):
        self.groups = groups
        self.interval = interval
        self.with_children = set(with_children)
        self.samples: list[ResourceSample] = []
        self._procs: dict[int, psutil.Process] = {}
        self._last_cpu: dict[str, dict[int, float]] = defaultdict(dict)
        self._first_cpu: dict[str, dict[int, float]] = defaultdict(dict)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._own = psutil.Process()

    def start(self) -> None:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="bench-resources", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):
                self.sample()

    def _process(self, pid: int) -> psutil.Process | None:
        proc = self._procs.get(pid)
        if proc is None or not proc.is_running():
            try:
                proc = psutil.Process(pid)
            except psutil.Error:
                return None
            self._procs[pid] = proc
        return proc

    def _members(self, group: str, roots: Sequence[int]) -> list[psutil.Process]:
        members: list[psutil.Process] = []
        for pid in roots:
            proc = self._process(pid)
            if proc is None:
                continue
            members.append(proc)
            if group in self.with_children:
                with contextlib.suppress(psutil.Error):
                    members.extend(proc.children(recursive=True))
        return members

    def sample(self) -> ResourceSample:
        now = time.monotonic()
        cpu: dict[str, float] = {}
        rss: dict[str, float] = {}
        for group, roots in self.groups().items():
            total_rss = 0.0
            for proc in self._members(group, roots):
                try:
                    with proc.oneshot():
                        times = proc.cpu_times()
                        total_rss += proc.memory_info().rss
                except psutil.Error:
                    continue
                self._last_cpu[group][proc.pid] = times.user + times.system
            cpu[group] = sum(self._last_cpu[group].values())
            rss[group] = total_rss
        with contextlib.suppress(psutil.Error):
            own = self._own.cpu_times()
            cpu[BENCH_GROUP] = own.user + own.system
            rss[BENCH_GROUP] = float(self._own.memory_info().rss)
        machine = psutil.cpu_times()
        cpu[MACHINE] = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        sample = ResourceSample(now, cpu, rss)
        with self._lock:
            self.samples.append(sample)
        return sample

    def window(self, t0: float, t1: float) -> dict[str, dict[str, float]]:
        """Per group between two monotonic times: CPU seconds, mean CPU % of one core, peak RSS (MB)."""
        with self._lock:
            inside = [s for s in self.samples if t0 - self.interval <= s.t <= t1 + self.interval]
        if len(inside) < 2:
            return {}
        first, last = inside[0], inside[-1]
        span = max(1e-9, last.t - first.t)
        out: dict[str, dict[str, float]] = {}
        for group in last.cpu:
            if group == MACHINE:
                continue
            seconds = last.cpu[group] - first.cpu.get(group, 0.0)
            peak = max(s.rss.get(group, 0.0) for s in inside)
            out[group] = {
                "cpu_seconds": round(seconds, 3),
                "cpu_percent": round(100.0 * seconds / span, 1),
                "peak_rss_mb": round(peak / 2**20, 1),
            }
        if MACHINE in last.cpu and MACHINE in first.cpu:
            # Everything else on the machine (other programs, other test runs) in the same window:
            # the numbers are only as good as this is small.
            busy = last.cpu[MACHINE] - first.cpu[MACHINE]
            ours = sum(v["cpu_seconds"] for v in out.values())
            other = max(0.0, busy - ours)
            out[OTHER_GROUP] = {
                "cpu_seconds": round(other, 3),
                "cpu_percent": round(100.0 * other / span, 1),
                "peak_rss_mb": 0.0,
            }
        return out

    def memory_now(self) -> dict[str, dict[str, float]]:
        """RSS and PSS (proportional: shared pages split between the processes that share them, so
        PostgreSQL's shared buffers count once) per group, in MB."""
        out: dict[str, dict[str, float]] = {}
        for group, roots in self.groups().items():
            rss = pss = 0.0
            for proc in self._members(group, roots):
                with contextlib.suppress(psutil.Error):
                    info = proc.memory_full_info()
                    rss += info.rss
                    pss += getattr(info, "pss", info.rss)
            out[group] = {"rss_mb": round(rss / 2**20, 1), "pss_mb": round(pss / 2**20, 1)}
        return out


def discover_platform(gateway_url: str) -> tuple[dict[str, str], Callable[[], dict[str, list[int]]]]:
    """For a platform this benchmark did not start: the services' URLs and pids, found through the
    environment of the gateway process that serves `gateway_url` (same user only; best effort)."""
    port = gateway_url.rstrip("/").rsplit(":", 1)[-1]
    urls: dict[str, str] = {}
    supervisor = ""
    supervisor_pid: int | None = None
    for proc in psutil.process_iter(["cmdline"]):
        if not _is_service_process(proc.info.get("cmdline") or []):
            continue
        with contextlib.suppress(psutil.Error):
            env = proc.environ()
            if env.get("SANDWICH_SERVICE") == "gateway" and env.get("SANDWICH_PORT") == port:
                supervisor = env.get("SANDWICH_PLATFORM_ID", "")
                supervisor_pid = proc.ppid()
                for key, value in env.items():
                    if key.startswith("SANDWICH_URL_"):
                        urls[key.removeprefix("SANDWICH_URL_").lower()] = value
                break

    def groups() -> dict[str, list[int]]:
        found: dict[str, list[int]] = defaultdict(list)
        if not supervisor:
            return {}
        for proc in psutil.process_iter(["cmdline"]):
            if not _is_service_process(proc.info.get("cmdline") or []):
                continue
            with contextlib.suppress(psutil.Error):
                env = proc.environ()
                if env.get("SANDWICH_PLATFORM_ID") == supervisor:
                    found[env.get("SANDWICH_SERVICE", "?")].append(proc.pid)
        # The embedded PostgreSQL and broker (NATS, or Kafka's JVM) are the supervisor's other children.
        with contextlib.suppress(psutil.Error, TypeError):
            for child in psutil.Process(supervisor_pid).children():
                name = child.name()
                if name.startswith("postgres"):
                    found["postgres"].append(child.pid)
                elif name.startswith("nats-server"):
                    found["nats"].append(child.pid)
                elif name == "java" and "kafka.Kafka" in child.cmdline():
                    found["kafka"].append(child.pid)
        return dict(found)

    return urls, groups


def _is_service_process(cmdline: Sequence[str]) -> bool:
    """`python -m sandwich.cli.serve NAME` (what `sandwich up` runs), or `sandwich.cli.main serve NAME`."""
    return "sandwich.cli.serve" in cmdline or ("sandwich.cli.main" in cmdline and "serve" in cmdline)
