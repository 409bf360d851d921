"""The load generator: orders placed at a rate or in a loop, each one a `Record`.

Customers are registered and funded first (`customers.py`), over one pooled client (`client.py`).

Two ways to load the platform:

- open loop (`run_open_loop`): order i is due at `i / rate` seconds, whatever happened to the
  earlier ones. Its latency is counted from that scheduled moment, not from when the request really
  left: a stalled platform (or a stalled load generator) shows up as latency instead of silently
  lowering the rate ("coordinated omission"). Orders that would exceed `max_in_flight` are not sent
  and are recorded as `client_backlog` errors, so the generator itself never runs out of memory.
- closed loop (`ramp.run_closed_loop`): N virtual customers, each placing its next order as soon as the
  previous one answered: the throughput the platform sustains at that concurrency;
  `ramp.run_ramped_closed_loop` finds the N at which it sustains the most.

Every order carries its own Idempotency-Key; every create call becomes one `Record`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from sandwich.bench.client import Http, HttpError
from sandwich.bench.customers import Customer

CREATED = (201, 202)
"""A create call succeeded: 201 with the payment outcome (hybrid, sync), 202 `created` (async)."""

DELIVERY = {"address": "Tverskaya 1, Moscow (bench)", "lat": 55.757, "lon": 37.615}


# -- records ---------------------------------------------------------------------------------------


@dataclass
class Record:
    """One create call. Times are seconds since the phase began (monotonic clock)."""

    seq: int
    customer: int
    key: str
    t_sched: float  # when it was due (open loop) or sent (closed loop)
    t_sent: float  # when it really left
    latency: float  # from t_sched to the answer (or the failure)
    status: int  # HTTP status, 0 when there was no answer
    error: str | None  # None when the order was created; otherwise the kind of failure
    order_id: str | None = None
    order_status: str | None = None  # as the create call answered it
    wall_sched: float = 0.0  # time.time() of t_sched, to compare with the platform's timestamps
    t_final: float | None = None  # closed loop, following: when the client saw the payment decided
    final_status: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def decided_at(self) -> float:
        """When the client knew how its order ended: the follow's end (async's 202), else the answer."""
        return self.t_final if self.t_final is not None else self.t_sched + self.latency

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def classify_error(status: int, body: Any) -> str:
    """The kind of a failed create call: `http_<status>_<error code>` from the error shape."""
    code = ""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code = str(error.get("code") or "")
    return f"http_{status}_{code}" if code else f"http_{status}"


def classify_exception(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect_error"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection_closed"
    if isinstance(exc, aiohttp.ClientError):
        return f"transport_{type(exc).__name__}"
    return f"client_{type(exc).__name__}"


# -- the schedule ----------------------------------------------------------------------------------


def open_loop_schedule(rate: float, duration: float) -> list[float]:
    """Due times (seconds from the start) of an open loop at `rate` per second for `duration` s:
    evenly spaced, the first at 0, every one before `duration`."""
    if rate <= 0 or duration <= 0:
        return []
    count = math.ceil(rate * duration - 1e-9)
    return [i / rate for i in range(count)]


# -- talking to the gateway ------------------------------------------------------------------------


# -- placing orders --------------------------------------------------------------------------------


@dataclass
class OrderPlacer:
    """Places one order per call; knows the phase clock, so every record has comparable times."""

    client: Http
    customers: Sequence[Customer]
    menu_item_id: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    quantity: int = 1
    on_created: Callable[[Record, Customer], None] | None = None
    examples: dict[str, str] = field(default_factory=dict)  # error kind -> the first answer seen

    def body(self) -> dict[str, Any]:
        return {
            "items": [{"menu_item_id": self.menu_item_id, "quantity": self.quantity}],
            "delivery": DELIVERY,
        }

    async def place(self, seq: int, customer: Customer, t_sched: float, clock: PhaseClock) -> Record:
        key = f"bench-{self.run_id}-{seq}"
        t_sent = clock.now()
        status, error, order_id, order_status = 0, None, None, None
        try:
            answer = await self.client.post(
                "/api/v1/order", json=self.body(), headers={**customer.headers, "Idempotency-Key": key}
            )
            status = answer.status_code
            payload: Any = None
            with contextlib.suppress(ValueError):
                payload = answer.json()
            if status in CREATED and isinstance(payload, dict) and payload.get("order_id"):
                order_id = str(payload["order_id"])
                order_status = str(payload.get("status") or "")
            else:
                error = classify_error(status, payload) if status not in CREATED else "bad_answer"
                self.examples.setdefault(error, answer.text[:300])
        except Exception as exc:
            error = classify_exception(exc)
            self.examples.setdefault(error, repr(exc)[:300])
        done = clock.now()
        record = Record(
            seq=seq,
            customer=customer.index,
            key=key,
            t_sched=t_sched,
            t_sent=t_sent,
            latency=done - t_sched,
            status=status,
            error=error,
            order_id=order_id,
            order_status=order_status,
            wall_sched=clock.wall(t_sched),
        )
        if record.ok and self.on_created is not None:
            self.on_created(record, customer)
        return record

    async def follow(
        self, record: Record, customer: Customer, clock: PhaseClock, timeout: float = 30.0
    ) -> None:
        """Follow the order live, as a client of the async flow does after its 202, until its
        payment is decided (or `timeout`): sets `record.t_final` and `record.final_status`.

        Its event stream first (GET /api/v1/orders/{id}/events: one request, the platform pushes);
        polling GET /api/v1/orders/{id} only when the stream fails. Polling 128 orders every 0.2 s
        was most of the work the platform did in async's closed loop (41 ms of CPU per order)."""
        if not record.ok or record.order_id is None:
            return
        if record.order_status and record.order_status != "created":
            record.t_final, record.final_status = record.t_sched + record.latency, record.order_status
            return
        deadline = clock.now() + timeout
        with contextlib.suppress(*HttpError, ValueError):
            status = await self.client.first_status_past(
                f"/api/v1/orders/{record.order_id}/events",
                "created",
                headers=customer.headers,
                timeout=timeout,
            )
            if status is not None:
                record.t_final, record.final_status = clock.now(), status
                return
        await self._poll(record, customer, clock, deadline)

    async def _poll(self, record: Record, customer: Customer, clock: PhaseClock, deadline: float) -> None:
        delay = 0.02
        while clock.now() < deadline:
            await asyncio.sleep(delay)
            delay = min(0.2, delay * 1.5)
            with contextlib.suppress(*HttpError, ValueError):
                answer = await self.client.get(f"/api/v1/orders/{record.order_id}", headers=customer.headers)
                status = str(answer.json().get("status")) if answer.status_code == 200 else "created"
                if status != "created":
                    record.t_final, record.final_status = clock.now(), status
                    return


class PhaseClock:
    """Seconds since the phase began (monotonic), and their wall-clock equivalent."""

    def __init__(self) -> None:
        self.mono0 = time.monotonic()
        self.wall0 = time.time()

    def now(self) -> float:
        return time.monotonic() - self.mono0

    def wall(self, t: float) -> float:
        return self.wall0 + t


@dataclass
class LiveCounts:
    """What the progress line shows while a phase runs."""

    due: int = 0
    sent: int = 0
    ok: int = 0
    errors: int = 0
    in_flight: int = 0
    last_error: str | None = None
    recent_latencies: list[float] = field(default_factory=list)

    def finish(self, record: Record) -> None:
        self.in_flight -= 1
        if record.ok:
            self.ok += 1
        else:
            self.errors += 1
            self.last_error = record.error
        self.recent_latencies.append(record.latency)
        if len(self.recent_latencies) > 2000:
            del self.recent_latencies[:1000]


ProgressCallback = Callable[[float, LiveCounts], None]


async def report_progress(clock: PhaseClock, counts: LiveCounts, callback: ProgressCallback | None) -> None:
    if callback is None:
        return
    while True:
        await asyncio.sleep(1.0)
        callback(clock.now(), counts)


async def run_open_loop(
    placer: OrderPlacer,
    rate: float,
    duration: float,
    *,
    max_in_flight: int = 2000,
    on_progress: ProgressCallback | None = None,
    clock: PhaseClock | None = None,
) -> list[Record]:
    """Place orders at `rate` per second for `duration` seconds, whatever the answers do."""
    clock = clock or PhaseClock()
    counts = LiveCounts()
    records: list[Record] = []
    tasks: set[asyncio.Task[None]] = set()
    customers = placer.customers

    async def one(seq: int, t_sched: float) -> None:
        record = await placer.place(seq, customers[seq % len(customers)], t_sched, clock)
        records.append(record)
        counts.finish(record)

    reporter = asyncio.create_task(report_progress(clock, counts, on_progress))
    try:
        for seq, t_sched in enumerate(open_loop_schedule(rate, duration)):
            delay = t_sched - clock.now()
            if delay > 0:
                await asyncio.sleep(delay)
            counts.due += 1
            if counts.in_flight >= max_in_flight:
                record = Record(seq, seq % len(customers), "", t_sched, clock.now(), 0.0, 0, "client_backlog")
                records.append(record)
                counts.in_flight += 1
                counts.finish(record)
                continue
            counts.sent += 1
            counts.in_flight += 1
            task = asyncio.create_task(one(seq, t_sched))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*list(tasks))
    finally:
        reporter.cancel()
        for task in tasks:
            task.cancel()
    records.sort(key=lambda r: r.seq)
    return records
