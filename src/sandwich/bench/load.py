"""The load generator: customers registered and funded first, then orders at a rate or in a loop.

Two ways to load the platform:

- open loop (`run_open_loop`): order i is due at `i / rate` seconds, whatever happened to the
  earlier ones. Its latency is counted from that scheduled moment, not from when the request really
  left: a stalled platform (or a stalled load generator) shows up as latency instead of silently
  lowering the rate ("coordinated omission"). Orders that would exceed `max_in_flight` are not sent
  and are recorded as `client_backlog` errors, so the generator itself never runs out of memory.
- closed loop (`run_closed_loop`): N virtual customers, each placing its next order as soon as the
  previous one answered: the throughput the platform sustains at that concurrency;
  `run_ramped_closed_loop` finds the N at which it sustains the most.

Every order carries its own Idempotency-Key; every create call becomes one `Record`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
import orjson

CREATED = (201, 202)
"""A create call succeeded: 201 with the payment outcome (hybrid, sync), 202 `created` (async)."""

FINAL_STATUSES = frozenset(
    {"paid", "payment_failed", "cancelled", "assigned", "ready", "in_delivery", "completed"}
)
"""Statuses past `created`: the payment step of the order is over."""

DELIVERY = {"address": "Tverskaya 1, Moscow (bench)", "lat": 55.757, "lon": 37.615}
PASSWORD = "bench-password-1"


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


@dataclass
class Customer:
    index: int
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class SetupError(RuntimeError):
    """Customers or the menu item could not be prepared: the benchmark cannot run."""


HttpError = (aiohttp.ClientError, TimeoutError)
"""What a request can fail with (besides an HTTP status)."""


@dataclass
class Answer:
    status_code: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        return orjson.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class Http:
    """The benchmark's HTTP client: one aiohttp session with as many connections as requests in
    flight. (Http was measured here at 8-11 ms of client CPU per request with 64 in
    flight, aiohttp at 0.12 ms: with httpx the load generator, on the same two cores as the platform,
    was the platform's biggest competitor.)"""

    def __init__(self, base_url: str, concurrency: int, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.size = max(8, concurrency)
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=10.0)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Keep-alive shorter than the services' (75 s): never reuse a connection being closed.
            connector = aiohttp.TCPConnector(limit=self.size, keepalive_timeout=30.0)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Answer:
        url = self._url(path)
        sent_headers = dict(headers or {})
        data = None
        if json is not None:
            data = orjson.dumps(json)
            sent_headers["Content-Type"] = "application/json"
        async with self.session.request(
            method,
            url,
            data=data,
            headers=sent_headers,
            params={k: str(v) for k, v in (params or {}).items()} or None,
            timeout=aiohttp.ClientTimeout(total=timeout) if timeout is not None else None,
        ) as answer:
            return Answer(answer.status, answer.headers, await answer.read())

    def _url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base_url}{path}"

    async def get(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("GET", path, **kwargs)

    async def first_status_past(
        self, path: str, past: str, *, headers: Mapping[str, str], timeout: float
    ) -> str | None:
        """Follow a Server-Sent Events stream of statuses (`data: {"status": ...}` lines) until one
        is not `past`; None when the stream was refused or ended before one came."""
        sent_headers = {**headers, "Accept": "text/event-stream"}
        async with self.session.get(
            self._url(path), headers=sent_headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as answer:
            if answer.status != 200:
                return None
            async for line in answer.content:
                if line.startswith(b"data:"):
                    status = orjson.loads(line[5:]).get("status")
                    if status is not None and status != past:
                        return str(status)
        return None

    async def post(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("POST", path, **kwargs)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def client_for(base_url: str, concurrency: int, timeout: float = 30.0) -> Http:
    """One pooled client for the whole load: as many connections as requests in flight."""
    return Http(base_url, concurrency, timeout)


async def _post_json(client: Http, path: str, body: Any, **kwargs: Any) -> Answer:
    return await client.post(path, json=body, **kwargs)


async def login(client: Http, username: str, password: str, *, timeout: float = 60.0) -> str:
    """Log in, waiting out the gateway's login throttle (429 + Retry-After) if it is on."""
    deadline = time.monotonic() + timeout
    while True:
        answer = await _post_json(client, "/api/v1/auth/login", {"username": username, "password": password})
        if answer.status_code == 200:
            return str(answer.json()["access_token"])
        if answer.status_code in (401, 429, 502, 503) and time.monotonic() < deadline:
            wait = float(answer.headers.get("Retry-After", "0.3") or 0.3)
            await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))
            continue
        raise SetupError(f"login of {username} failed: {answer.status_code} {answer.text[:200]}")


async def _register(client: Http, username: str, *, timeout: float = 600.0) -> Answer:
    """Register, waiting out the gateway's register throttle (429 + Retry-After, per client address,
    SANDWICH_REGISTER_RATE a minute) if it is on: a platform the bench did not start has it on."""
    deadline = time.monotonic() + timeout
    while True:
        answer = await _post_json(
            client,
            "/api/v1/auth/register",
            {"username": username, "password": PASSWORD, "email": f"{username}@bench.example.com"},
        )
        if answer.status_code != 429 or time.monotonic() >= deadline:
            return answer
        wait = float(answer.headers.get("Retry-After", "1") or 1)
        await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))


async def register_customer(
    client: Http, index: int, prefix: str, deposit: int, *, retries: int = 5
) -> Customer:
    """Register, log in and fund one customer (deposit with an Idempotency-Key, so a retry is safe)."""
    username = f"{prefix}{index:05d}"
    for attempt in range(retries):
        try:
            answer = await _register(client, username)
            if answer.status_code not in (201, 409):  # 409: an earlier attempt got through
                raise SetupError(f"register {username}: {answer.status_code} {answer.text[:200]}")
            token = await login(client, username, PASSWORD)
            customer = Customer(index, username, token)
            if deposit:
                await _deposit(client, customer, deposit, key=f"{username}-funding")
            return customer
        except (*HttpError, SetupError):
            if attempt == retries - 1:
                raise
            await asyncio.sleep(0.5 * 2**attempt)
    raise SetupError(f"could not set up {username}")  # pragma: no cover


async def _deposit(client: Http, customer: Customer, amount: int, key: str) -> None:
    # In the async flow the account is opened from the UserCreated event: allow it a moment.
    deadline = time.monotonic() + 15.0
    while True:
        answer = await _post_json(
            client,
            "/api/v1/billing/account/deposit",
            {"amount": amount},
            headers={**customer.headers, "Idempotency-Key": key},
        )
        if answer.status_code == 201:
            return
        if time.monotonic() > deadline or answer.status_code not in (404, 409, 502, 503):
            raise SetupError(f"deposit of {customer.username}: {answer.status_code} {answer.text[:200]}")
        await asyncio.sleep(0.2)


async def setup_customers(
    client: Http,
    count: int,
    *,
    deposit: int,
    parallel: int = 16,
    prefix: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[Customer]:
    """`count` new customers, registered, logged in and funded, `parallel` at a time."""
    prefix = prefix or f"bench{secrets.token_hex(3)}x"
    semaphore = asyncio.Semaphore(parallel)
    done = 0

    async def one(index: int) -> Customer:
        nonlocal done
        async with semaphore:
            customer = await register_customer(client, index, prefix, deposit)
        done += 1
        if on_progress is not None:
            on_progress(done, count)
        return customer

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def create_menu_item(client: Http, admin_token: str, price: int) -> str:
    """A menu item of the benchmark's own, made of ingredients no food point stocks: its orders stay
    `paid` (the kitchen cannot assign them), so the benchmark measures ordering and paying only."""
    tag = secrets.token_hex(4)
    answer = await _post_json(
        client,
        "/api/v1/admin/menu",
        {
            "name": f"Bench sandwich {tag}",
            "price": price,
            "ingredients": [
                {"name": f"bench-bread-{tag}", "quantity": 2},
                {"name": f"bench-ham-{tag}", "quantity": 1},
            ],
        },
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    if answer.status_code != 201:
        raise SetupError(f"creating the bench menu item: {answer.status_code} {answer.text[:200]}")
    return str(answer.json()["id"])


async def first_menu_item(client: Http, token: str) -> tuple[str, int]:
    answer = await client.get("/api/v1/menu", headers={"Authorization": f"Bearer {token}"})
    if answer.status_code != 200 or not answer.json().get("items"):
        raise SetupError("the menu is empty and no admin was given to create a bench item")
    item = answer.json()["items"][0]
    return str(item["id"]), int(item["price"])


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


async def _report_progress(clock: PhaseClock, counts: LiveCounts, callback: ProgressCallback | None) -> None:
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

    reporter = asyncio.create_task(_report_progress(clock, counts, on_progress))
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


async def run_closed_loop(
    placer: OrderPlacer,
    virtual_customers: int,
    duration: float,
    *,
    follow: bool = True,
    on_progress: ProgressCallback | None = None,
    clock: PhaseClock | None = None,
) -> list[Record]:
    """`virtual_customers` loops, each placing its next order when the previous one is decided: at
    once when the create call answered `paid` or `payment_failed` (hybrid, sync); after following the
    order until it is (async's 202 `created`), when `follow`. Without following, a closed loop on
    the async flow would measure how fast orders are accepted, not paid.

    Virtual customer v orders as customers v, v + N, v + 2N, ... in turn (when there are more
    customers than loops), which keeps each customer's order count within what the read side lists.
    """
    run = await run_ramped_closed_loop(
        placer, Ramp((virtual_customers,), 0.0), duration, follow=follow, on_progress=on_progress, clock=clock
    )
    return run.records


@dataclass(frozen=True)
class Ramp:
    """How a closed loop finds the concurrency the platform does best at: it starts with
    `levels[0]` virtual customers and moves to the next level after each step, as long as the step
    just watched had no failed order and completed at least `min_gain` more orders per second than
    the best step before it; then it holds the best level.

    A step first lets its level warm up (until each of its virtual customers has had an order
    decided, `step_seconds` at most: a new loop's first order counts only once it is decided), then
    counts the orders decided in the next `step_seconds`."""

    levels: Sequence[int]
    step_seconds: float
    min_gain: float = 0.05

    @property
    def longest_climb(self) -> float:
        """Seconds before the hold at most (every level warmed up and watched)."""
        return len(self.levels) * 2 * self.step_seconds if len(self.levels) > 1 else 0.0


@dataclass
class RampedRun:
    records: list[Record]
    virtual_customers: int  # the level held
    hold_began: float  # phase seconds: the hold at that level, whose orders are the measurement
    steps: list[dict[str, Any]] = field(default_factory=list)  # each level watched on the way


async def run_ramped_closed_loop(
    placer: OrderPlacer,
    ramp: Ramp,
    hold_seconds: float,
    *,
    follow: bool = True,
    on_progress: ProgressCallback | None = None,
    clock: PhaseClock | None = None,
) -> RampedRun:
    """A closed loop (see `run_closed_loop`) whose number of virtual customers is found on the way
    (`ramp`), then held for `hold_seconds`.

    Why: a closed loop's throughput is its concurrency divided by the latency, so a fixed number of
    virtual customers measures the latency as much as the platform. With 32 the platform here was
    not saturated (55 orders/s at 25 ms of CPU per order); with 96 it did 110/s at 13 ms, its
    batching at work; with 256 the queue outgrew the gateway's timeouts. Loops above a lower level
    that is held again finish their current order and stop.
    """
    clock = clock or PhaseClock()
    counts = LiveCounts()
    records: list[Record] = []
    customers = placer.customers
    partition = max(ramp.levels)
    seq_counter = iter(range(1 << 62))
    decided_by_loop = [0] * partition  # orders each loop has had decided: the warm-ups wait on them
    allowed = [ramp.levels[0]]
    deadline = [math.inf if len(ramp.levels) > 1 else hold_seconds]

    async def loop(v: int) -> None:
        own = [c for i, c in enumerate(customers) if i % partition == v] or [customers[v % len(customers)]]
        turn = 0
        while clock.now() < deadline[0] and v < allowed[0]:
            seq = next(seq_counter)
            counts.due += 1
            counts.sent += 1
            counts.in_flight += 1
            customer = own[turn % len(own)]
            record = await placer.place(seq, customer, clock.now(), clock)
            turn += 1
            counts.finish(record)
            if follow:
                await placer.follow(record, customer, clock)
            records.append(record)  # decided: the ramp counts its steps by what is in `records`
            decided_by_loop[v] += 1
            if record.status == 0 and record.error in ("connect_error", "connection_closed"):
                await asyncio.sleep(0.05)  # the gateway is away: do not spin

    loops: list[asyncio.Task[None]] = []

    def grow_to(level: int) -> None:
        allowed[0] = level
        loops.extend(asyncio.create_task(loop(v)) for v in range(len(loops), level))

    reporter = asyncio.create_task(_report_progress(clock, counts, on_progress))
    try:
        grow_to(ramp.levels[0])
        held, steps = await _climb(ramp, records, decided_by_loop, clock, grow_to)
        allowed[0] = held
        hold_began = clock.now()
        deadline[0] = hold_began + hold_seconds
        await asyncio.gather(*loops)
    finally:
        reporter.cancel()
        for task in loops:
            task.cancel()
    records.sort(key=lambda r: r.seq)
    return RampedRun(records, held, hold_began, steps)


async def _climb(
    ramp: Ramp,
    records: list[Record],
    decided_by_loop: Sequence[int],
    clock: PhaseClock,
    grow_to: Callable[[int], None],
) -> tuple[int, list[dict[str, Any]]]:
    """Watch each level of the ramp for a step; the level to hold, and what each step did."""
    if len(ramp.levels) == 1:
        return ramp.levels[0], []  # one level: nothing to find
    best: tuple[int, float] | None = None
    steps: list[dict[str, Any]] = []
    for index, level in enumerate(ramp.levels):
        if index > 0:
            grow_to(level)
        warmed = await _warm_up(decided_by_loop, clock, level, ramp.step_seconds)
        began = clock.now()
        await asyncio.sleep(ramp.step_seconds)
        ended = clock.now()
        decided = [r for r in records if began <= r.decided_at < ended]
        per_s = sum(1 for r in decided if r.ok) / max(1e-9, ended - began)
        failed = sum(1 for r in decided if not r.ok)
        steps.append(
            {
                "virtual_customers": level,
                "orders_per_s": round(per_s, 1),
                "failed": failed,
                "warm_up_s": round(warmed, 2),
            }
        )
        if failed or (best is not None and per_s < best[1] * (1 + ramp.min_gain)):
            break
        best = (level, per_s)
    return (best[0] if best is not None else ramp.levels[0]), steps


async def _warm_up(decided_by_loop: Sequence[int], clock: PhaseClock, level: int, longest: float) -> float:
    """Wait until each of the level's `level` loops has had an order decided, `longest` seconds at
    most: a step counted from the moment its loops start sees its first orders' latency as a gap
    (with 64 loops at 1.4 s per order, a 2.5 s step read 3 orders/s). Seconds waited.

    Per loop, not a count of orders: the loops of the level before go on deciding orders while the
    new ones wait for their first, and with a quota of `level` orders from any loop they could fill
    it alone (a fast old loop decides several) before the new loops' first orders were decided."""
    began = clock.now()
    while clock.now() - began < longest and not all(decided_by_loop[v] for v in range(level)):
        await asyncio.sleep(0.05)
    return clock.now() - began


async def gather_limited(coros: Sequence[Awaitable[Any]], limit: int) -> list[Any]:
    """Await `coros` with at most `limit` running at a time; results in order."""
    semaphore = asyncio.Semaphore(limit)

    async def guarded(coro: Awaitable[Any]) -> Any:
        async with semaphore:
            return await coro

    return list(await asyncio.gather(*(guarded(c) for c in coros)))
