"""The benchmark's "billing answers 200 ms late" fault: wiring, not a use case."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sandwich.platform.observability import FAULT_DELAY


@dataclass(frozen=True)
class InjectedDelay:
    """Waits SANDWICH_FAULT_DELAY_MS (0 normally) before a payment is taken, in a route or in the
    consumer; the metric lets the benchmark see that the fault was in effect, whichever paid."""

    service: str
    delay_ms: float

    async def __call__(self) -> None:
        if self.delay_ms > 0:
            with FAULT_DELAY.labels(self.service).time():
                await asyncio.sleep(self.delay_ms / 1000)
