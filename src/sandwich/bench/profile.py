"""Where the time goes: py-spy samples of the busiest services while one phase runs.

`py-spy record --gil` keeps a sample only while the process holds the GIL, so the samples stand for
the CPU the Python code of that service uses (time spent waiting on sockets is not in them); the C
parts of drivers (asyncpg's protocol, uvloop) count towards the Python function that called them.
`--nonblocking` reads the stacks without stopping the process, so the service is not slowed down;
the samplers' own CPU shows under "other processes".

Each service's samples are summed twice: by the package a sample's innermost frame belongs to (the
database driver, the ORM, the HTTP server, ...) and by function, for the report's "where the time
goes" table.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROFILED = ("orders", "billing", "order_info", "notifications", "kitchen", "gateway")
"""The services that take most of an order's CPU (see the per-process table of any run)."""

SAMPLES_PER_SECOND = 50

# The package of a frame's file -> the part of the stack it is counted as.
PARTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("asyncpg",), "PostgreSQL driver (asyncpg)"),
    (("sqlalchemy", "greenlet"), "SQLAlchemy"),
    (("uvicorn", "starlette", "fastapi", "httptools", "h11", "anyio"), "HTTP server (uvicorn, FastAPI)"),
    (("aiohttp", "yarl", "multidict", "aiohappyeyeballs"), "HTTP client (aiohttp)"),
    (("pydantic", "pydantic_core"), "pydantic"),
    (("nats",), "NATS client"),
    (("aiokafka", "kafka"), "Kafka client"),
    (("email", "aiosmtplib"), "mail (email, aiosmtplib)"),
    (("structlog", "logging"), "logging"),
    (("prometheus_client",), "metrics"),
    (("json", "orjson"), "JSON"),
    (("jwt", "cryptography"), "tokens (PyJWT)"),
    (("asyncio", "uvloop", "selectors", "concurrent", "threading"), "event loop, socket writes (asyncio)"),
    (("sandwich",), "sandwich's own code"),
)


def py_spy() -> str | None:
    """The py-spy executable next to this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def part_of(frame: str) -> str:
    """'PreparedStatement.__do_execute (asyncpg/prepared_stmt.py:257)' -> 'PostgreSQL driver (asyncpg)'."""
    _, _, location = frame.rpartition(" (")
    top = location.split("/", 1)[0].split(".", 1)[0] if "/" in location else location.split(".py", 1)[0]
    for packages, name in PARTS:
        if top in packages:
            return name
    return "other"


def summarize_raw(raw: str, top: int = 6) -> dict[str, Any]:
    """py-spy's raw output (collapsed stacks, `frame;frame;... count` per line) summed up."""
    by_part: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        innermost = stack.split(";")[-1]
        total += count
        by_part[part_of(innermost)] += count
        by_function[innermost.split(" (")[0] or "?"] += count
    if not total:
        return {"samples": 0, "by_part": {}, "top_functions": []}
    return {
        "samples": total,
        "by_part": {name: round(n / total, 3) for name, n in by_part.most_common()},
        "top_functions": [[name, round(n / total, 3)] for name, n in by_function.most_common(top)],
    }


@dataclass
class Profiler:
    """py-spy on each of `pids` (service -> pid) for `seconds`, its output under `directory`."""

    pids: Mapping[str, int]
    directory: Path
    seconds: float
    errors: list[str] = field(default_factory=list)
    _procs: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)

    async def start(self) -> bool:
        executable = py_spy()
        if executable is None:
            self.errors.append("py-spy is not installed")
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        for service, pid in self.pids.items():
            try:
                self._procs[service] = await asyncio.create_subprocess_exec(
                    executable,
                    "record",
                    "--gil",
                    "--nonblocking",
                    "--rate",
                    str(SAMPLES_PER_SECOND),
                    "--duration",
                    str(max(1, round(self.seconds))),
                    "--format",
                    "raw",
                    "--output",
                    str(self.directory / f"{service}.txt"),
                    "--pid",
                    str(pid),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                )
            except OSError as exc:
                self.errors.append(f"{service}: {exc!r}")
        return bool(self._procs)

    async def finish(self, cpu_ms_per_order: Mapping[str, float] | None = None) -> dict[str, Any]:
        """Wait for the samplers and sum up what they wrote: service -> summary."""
        summaries: dict[str, Any] = {}
        for service, proc in self._procs.items():
            try:
                _, stderr = await asyncio.wait_for(proc.communicate(), self.seconds + 20)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                self.errors.append(f"{service}: py-spy did not finish")
                continue
            path = self.directory / f"{service}.txt"
            if proc.returncode != 0 or not path.exists():
                self.errors.append(f"{service}: py-spy exited {proc.returncode}: {stderr.decode()[-300:]}")
                continue
            summary = summarize_raw(path.read_text(errors="replace"))
            if cpu_ms_per_order and service in cpu_ms_per_order:
                summary["cpu_ms_per_order"] = cpu_ms_per_order[service]
            summaries[service] = summary
        return {"services": summaries, "errors": self.errors, "raw_dir": str(self.directory)}


def profiled_pids(groups: Mapping[str, Sequence[int]]) -> dict[str, int]:
    """The first pid of each profiled service that runs now."""
    return {name: pids[0] for name in PROFILED if (pids := groups.get(name))}
