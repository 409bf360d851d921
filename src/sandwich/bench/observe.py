"""What the create call alone does not tell: when the customer could *see* an order paid and told.

`EndToEndSampler` follows a bounded sample of orders as a client would (GET /api/v1/orders/{id}
and GET /api/v1/notifications) while the load runs: when the customer could *see* the order paid
and the `order_paid` notification.

The rest of what a phase observes has modules of its own: what became of every order
(`outcomes.py`), the services' histograms (`metrics.py`), CPU and memory (`resources.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from sandwich.bench.client import Answer, Http
from sandwich.bench.customers import Customer
from sandwich.bench.load import Record

# -- following a sample of orders ------------------------------------------------------------------


@dataclass
class Sample:
    order_id: str
    customer: Customer
    wall_sched: float
    created_status: str
    seen_paid: float | None = None  # seconds from the scheduled send until GET showed it paid
    seen_final: str | None = None
    seen_letter: float | None = None  # ... until GET /notifications listed its order_paid
    gave_up: bool = False


class EndToEndSampler:
    """Follows up to `limit` orders, spread over the phase (every `every`-th created order), at most
    `active` at a time, each polled every `interval` seconds, and never more than `max_rps`
    requests per second in all: a small, bounded extra load (the numbers for every order come from
    the platform's timestamps after the phase; these are what a client polling would see)."""

    def __init__(
        self,
        client: Http,
        *,
        limit: int = 200,
        every: int = 1,
        active: int = 4,
        interval: float = 0.05,
        max_rps: float = 20.0,
        give_up_after: float = 60.0,
    ) -> None:
        self.client = client
        self.limit = limit
        self.every = max(1, every)
        self.active = active
        self.interval = interval
        self.max_rps = max_rps
        self.give_up_after = give_up_after
        self.samples: list[Sample] = []
        self.requests = 0
        self._queue: asyncio.Queue[Sample] = asyncio.Queue()
        self._offered = 0
        self._workers: list[asyncio.Task[None]] = []
        self._next_slot = 0.0

    def offer(self, record: Record, customer: Customer) -> None:
        """Called for every created order; keeps every `every`-th until `limit` are kept."""
        self._offered += 1
        if len(self.samples) >= self.limit or (self._offered - 1) % self.every or record.order_id is None:
            return
        sample = Sample(record.order_id, customer, record.wall_sched, record.order_status or "")
        self.samples.append(sample)
        self._queue.put_nowait(sample)

    def start(self) -> None:
        self._workers = [asyncio.create_task(self._work()) for _ in range(self.active)]

    def _done(self, sample: Sample) -> bool:
        return sample.gave_up or sample.seen_letter is not None or sample.seen_final == "payment_failed"

    async def finish(self, timeout: float = 30.0) -> None:
        """Wait (up to `timeout`) for the samples still followed, then stop."""
        deadline = time.monotonic() + timeout
        while not all(self._done(s) for s in self.samples) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def _work(self) -> None:
        while True:
            sample = await self._queue.get()
            with contextlib.suppress(Exception):
                await self._follow(sample)

    async def _get(self, path: str, sample: Sample, **params: Any) -> Answer:
        """One request, within the sampler's budget of `max_rps`."""
        now = time.monotonic()
        slot = max(now, self._next_slot)
        self._next_slot = slot + 1.0 / self.max_rps
        if slot > now:
            await asyncio.sleep(slot - now)
        self.requests += 1
        return await self.client.get(path, headers=sample.customer.headers, params=params or None)

    async def _follow(self, sample: Sample) -> None:
        deadline = time.time() + self.give_up_after
        while sample.seen_final is None and time.time() < deadline:
            answer = await self._get(f"/api/v1/orders/{sample.order_id}", sample)
            if answer.status_code == 200:
                status = str(answer.json().get("status"))
                if status != "created":
                    sample.seen_final = status
                    if status != "payment_failed":
                        sample.seen_paid = time.time() - sample.wall_sched
                    break
            await asyncio.sleep(self.interval)
        if sample.seen_final in (None, "payment_failed"):
            sample.gave_up = sample.seen_final is None
            return
        while time.time() < deadline:
            answer = await self._get("/api/v1/notifications", sample, limit=20)
            if answer.status_code == 200 and any(
                n.get("order_id") == sample.order_id and n.get("kind") == "order_paid"
                for n in answer.json().get("items", ())
            ):
                sample.seen_letter = time.time() - sample.wall_sched
                return
            await asyncio.sleep(self.interval)
        sample.gave_up = True

    def summary(self) -> dict[str, Any]:
        return {
            "sampled": len(self.samples),
            "seen_paid_s": [s.seen_paid for s in self.samples if s.seen_paid is not None],
            "seen_order_paid_notification_s": [
                s.seen_letter for s in self.samples if s.seen_letter is not None
            ],
            "gave_up": sum(1 for s in self.samples if s.gave_up),
            "not_followed_to_the_end": sum(1 for s in self.samples if not self._done(s)),
            "requests": self.requests,
        }
