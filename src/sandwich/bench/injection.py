"""A fault carried out during one phase: injected and lifted at its moments, what happened recorded.

A whole-phase fault (`Fault.whole_phase`) is injected before the load begins and lifted after it
ends; any other is injected and lifted by tasks at its window's moments while the load runs. A
failed action is recorded in the phase's result (`errors`), never raised: the phase still measures
what the platform did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from sandwich.bench.faults import Fault
from sandwich.bench.load import PhaseClock


@dataclass
class Injection:
    """One phase's fault (or none: then every method does nothing and `result` is None)."""

    fault: Fault | None
    duration: float
    platform: Any  # sandwich.supervisor.Platform: what the fault's actions act on
    console: Console
    label: str
    injected: bool = False
    lifted: bool = False
    info: dict[str, Any] | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.fault is not None:
            window = self.fault.window(self.duration)
            self.info = {
                "name": self.fault.name,
                "title": self.fault.title,
                "window": list(window),
                "errors": [],
            }

    @property
    def whole_phase(self) -> bool:
        return self.fault is not None and self.fault.whole_phase

    async def inject_for_the_whole_phase(self) -> None:
        if self.fault is not None and self.fault.whole_phase:
            self.console.log(f"{self.label} injecting: {self.fault.title}")
            await asyncio.to_thread(self.fault.inject, self.platform)
            self.injected = True

    def schedule(self, clock: PhaseClock) -> None:
        """Inject and lift a windowed fault at its moments of the phase (`clock`)."""
        if self.fault is not None and not self.fault.whole_phase:
            start, end = self.fault.window(self.duration)
            self.tasks.append(asyncio.create_task(self._at(clock, start, self.fault.inject, "inject")))
            self.tasks.append(asyncio.create_task(self._at(clock, end, self.fault.lift, "lift")))

    async def _at(self, clock: PhaseClock, moment: float, action: Callable[[Any], None], what: str) -> None:
        assert self.info is not None
        await asyncio.sleep(max(0.0, moment - clock.now()))
        moments = self.info.setdefault("moments", {})  # phase seconds: when each action began and ended
        moments[f"{what}_began"] = round(clock.now(), 3)
        try:
            await asyncio.to_thread(action, self.platform)
        except Exception as exc:
            self.info["errors"].append(f"{what}: {exc!r}")
            self.console.log(f"[red]{self.label} {what} failed: {exc!r}")
            return
        moments[f"{what}_done"] = round(clock.now(), 3)
        if what == "inject":
            self.injected = True
        else:
            self.lifted = True

    async def done_with_the_window(self) -> None:
        """Wait for a windowed fault's actions (the load is over: they are due or past)."""
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def lift_after_the_whole_phase(self) -> None:
        if self.fault is not None and self.fault.whole_phase and self.injected:
            try:
                await asyncio.to_thread(self.fault.lift, self.platform)
                self.lifted = True
            except Exception as exc:
                assert self.info is not None
                self.info["errors"].append(f"lift: {exc!r}")

    def result(self) -> dict[str, Any] | None:
        """The phase result's `fault`: the scenario, its window, moments, errors, whether it was in place."""
        return self.info and {**self.info, "injected": self.injected, "lifted": self.lifted}

    @property
    def moments(self) -> dict[str, float]:
        return (self.info or {}).get("moments") or {}
