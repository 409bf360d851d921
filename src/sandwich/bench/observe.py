"""What the create call alone does not tell: when an order was paid and told, event lag, resources.

- `EndToEndSampler` follows a bounded sample of orders as a client would (GET /api/v1/orders/{id}
  and GET /api/v1/notifications) while the load runs: when the customer could *see* the order paid
  and the `order_paid` notification.
- `collect_outcomes` reads, after a phase, every order of the phase, every notification and every
  payment of the bench's customers, and the letters in the mail sink. From the platform's own
  timestamps it gives create -> paid and create -> letter for *every* order, commit -> consumer lag
  (order paid at -> notification created at), and the checks of the fault scenarios.
- `ResourceSampler` reads CPU seconds and RSS of every process of the platform every 0.5 s.
- `scrape_histograms` reads Prometheus histograms (`outbox_publish_lag_seconds`, and
  `event_consume_lag_seconds` once services observe it) from every service's /metrics.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import os
import quopri
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from sandwich.bench.client import Answer, Http, HttpError
from sandwich.bench.customers import Customer
from sandwich.bench.load import Record

PUBLISH_LAG_METRIC = "outbox_publish_lag_seconds"
CONSUME_LAG_METRIC = "event_consume_lag_seconds"
"""Proposed: observed by platform/inbox.py's `idempotent_consumer` after a handled event's
transaction commits, as `time.time() - envelope.occurred_at`, labelled by service and consumer."""
HANDLE_METRIC = "event_handle_seconds"
"""The part of the consume lag that was the consumer's own work on the event (same labels)."""

LIST_LIMIT = 200  # GET /api/v1/orders and /api/v1/notifications answer at most this many
OPERATIONS_LIMIT = 1000


def parse_time(value: str | None) -> float | None:
    """An RFC 3339 time of the API as a Unix timestamp."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


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


# -- the outcome of every order, after a phase -----------------------------------------------------


@dataclass
class OrderView:
    order_id: str
    customer: int
    status: str
    created_at: float | None
    updated_at: float | None


@dataclass
class Outcomes:
    """Everything the platform says about the orders of one phase, after it."""

    orders: dict[str, OrderView] = field(default_factory=dict)
    # (order_id, kind) -> the notifications' created_at (more than one is a duplicate)
    notifications: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    # order_id -> payment operations (more than one is a duplicate charge)
    payments: Counter[str] = field(default_factory=Counter)
    refunds: Counter[str] = field(default_factory=Counter)
    # (order_id, kind) -> mtime of every mail file about it
    letters: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    missing_from_read_model: int = 0  # created orders the list did not show (read one by one)
    unreadable: int = 0
    # Accepted by the create call (an order id answered) and not found by it (404): async's 202 until
    # orders has taken the request; for good, an order lost.
    not_stored: list[str] = field(default_factory=list)

    def statuses(self) -> Counter[str]:
        return Counter(view.status for view in self.orders.values())

    def unfinished(self) -> list[str]:
        """Orders still `created`, and orders accepted but not (yet) stored. A create call that was
        refused has no order id, so it is never one of these."""
        created = [o for o, view in self.orders.items() if view.status == "created"]
        return sorted({*created, *self.not_stored})


NOT_FOUND = object()
"""What `_get_json` answers for a 404 when asked to tell it apart (`not_found=NOT_FOUND`)."""


async def _get_json(
    client: Http, path: str, headers: Mapping[str, str], *, not_found: Any = None, **params: Any
) -> Any:
    """The JSON of a 200; `not_found` for a 404; None when it fails five times."""
    for attempt in range(5):
        try:
            answer = await client.get(path, headers=dict(headers), params=params or None)
            if answer.status_code == 200:
                return answer.json()
            if answer.status_code == 404:
                return not_found
        except HttpError:
            pass
        await asyncio.sleep(0.2 * 2**attempt)
    return None


async def list_orders(
    client: Http,
    customers: Sequence[Customer],
    since_wall: float,
    parallel: int = 16,
    until_wall: float | None = None,
) -> dict[str, OrderView]:
    """Every order of these customers created between `since_wall` and `until_wall` (a phase's
    orders, not those of the phases after it) that the read model lists."""
    semaphore = asyncio.Semaphore(parallel)
    found: dict[str, OrderView] = {}

    async def one(customer: Customer) -> None:
        async with semaphore:
            body = await _get_json(client, "/api/v1/orders", customer.headers, limit=LIST_LIMIT)
        for item in (body or {}).get("items", ()):
            created = parse_time(item.get("created_at"))
            if created is not None and (
                created < since_wall - 1.0 or (until_wall is not None and created > until_wall)
            ):
                continue
            found[str(item["order_id"])] = OrderView(
                str(item["order_id"]),
                customer.index,
                str(item["status"]),
                created,
                parse_time(item.get("updated_at")),
            )

    await asyncio.gather(*(one(c) for c in customers))
    return found


async def wait_until_settled(
    client: Http,
    customers: Sequence[Customer],
    records: Sequence[Record],
    since_wall: float,
    *,
    timeout: float,
    on_wait: Callable[[int], None] | None = None,
) -> dict[str, OrderView]:
    """Poll until no order of the phase is still `created` (or `timeout`); the last view."""
    known = {r.order_id for r in records if r.order_id}
    deadline = time.monotonic() + timeout
    while True:
        views = await list_orders(client, customers, since_wall)
        pending = [o for o, v in views.items() if v.status == "created"]
        unseen = known - views.keys()
        if (not pending and not unseen) or time.monotonic() > deadline:
            return views
        if on_wait is not None:
            on_wait(len(pending) + len(unseen))
        await asyncio.sleep(1.0)


async def collect_outcomes(
    client: Http,
    customers: Sequence[Customer],
    records: Sequence[Record],
    since_wall: float,
    *,
    mail_dir: Path | None,
    views: dict[str, OrderView] | None = None,
    parallel: int = 16,
) -> Outcomes:
    """Orders, notifications, payments and letters of the phase that began at `since_wall`."""
    out = Outcomes()
    until_wall = since_wall + max((r.t_sched + r.latency for r in records), default=0.0) + 1.0
    out.orders = (
        dict(views)
        if views is not None
        else await list_orders(client, customers, since_wall, until_wall=until_wall)
    )
    by_index = {c.index: c for c in customers}
    semaphore = asyncio.Semaphore(parallel)

    # Orders the create call told us about but the list did not show (more than LIST_LIMIT per
    # customer, or the read model missed them): one by one.
    missing = [r for r in records if r.order_id and r.order_id not in out.orders]
    out.missing_from_read_model = len(missing)

    async def read_one(record: Record) -> None:
        customer = by_index[record.customer]
        async with semaphore:
            body = await _get_json(
                client, f"/api/v1/orders/{record.order_id}", customer.headers, not_found=NOT_FOUND
            )
        if body is NOT_FOUND:
            out.not_stored.append(str(record.order_id))
            return
        if body is None:
            out.unreadable += 1
            return
        out.orders[str(record.order_id)] = OrderView(
            str(record.order_id),
            customer.index,
            str(body["status"]),
            parse_time(body.get("created_at")),
            _paid_at(body) or parse_time(body.get("updated_at")),
        )

    async def money_and_notes(customer: Customer) -> None:
        async with semaphore:
            operations = await _get_json(
                client, "/api/v1/billing/account/operations", customer.headers, limit=OPERATIONS_LIMIT
            )
            notes = await _get_json(client, "/api/v1/notifications", customer.headers, limit=LIST_LIMIT)
        for op in (operations or {}).get("items", ()):
            order_id = op.get("order_id")
            if not order_id:
                continue
            if op.get("kind") == "payment":
                out.payments[str(order_id)] += 1
            elif op.get("kind") == "refund":
                out.refunds[str(order_id)] += 1
        for note in (notes or {}).get("items", ()):
            order_id = note.get("order_id")
            created = parse_time(note.get("created_at"))
            if order_id and created is not None and created >= since_wall - 1.0:
                out.notifications.setdefault((str(order_id), str(note.get("kind"))), []).append(created)

    await asyncio.gather(*(read_one(r) for r in missing), *(money_and_notes(c) for c in customers))
    if mail_dir is not None:
        out.letters = await asyncio.to_thread(read_letters, mail_dir, since_wall - 1.0)
    # Only this phase's orders: later phases' notifications, payments and letters are theirs.
    ours = out.orders.keys()
    out.notifications = {k: v for k, v in out.notifications.items() if k[0] in ours}
    out.letters = {k: v for k, v in out.letters.items() if k[0] in ours}
    out.payments = Counter({k: v for k, v in out.payments.items() if k in ours})
    out.refunds = Counter({k: v for k, v in out.refunds.items() if k in ours})
    return out


def _paid_at(order: Mapping[str, Any]) -> float | None:
    for entry in order.get("history") or ():
        if entry.get("status") == "paid":
            return parse_time(entry.get("at"))
    return None


# -- letters in the mail sink ----------------------------------------------------------------------

_SUBJECT = re.compile(rb"^Subject: (.*)$", re.MULTILINE)
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
LETTER_KINDS = (
    (b"is paid", "order_paid"),
    (b"could not take the payment", "order_payment_failed"),
    (b"was cancelled", "order_cancelled"),
    (b"is delivered", "order_completed"),
)


def letter_key(content: bytes) -> tuple[str, str] | None:
    """(order id, kind) of a stored letter: the kind from its subject, the order from its body."""
    subject = _SUBJECT.search(content)
    if subject is None:
        return None
    kind = next((k for marker, k in LETTER_KINDS if marker in subject.group(1)), None)
    head, _, body = content.partition(b"\r\n\r\n")
    if not body:
        head, _, body = content.partition(b"\n\n")
    encoding = head.lower()
    with contextlib.suppress(ValueError, binascii.Error):
        if b"quoted-printable" in encoding:
            body = quopri.decodestring(body)
        elif b"content-transfer-encoding: base64" in encoding:
            body = base64.b64decode(body)
    order = _UUID.search(body)
    if kind is None or order is None:
        return None
    return order.group(0).decode(), kind


def read_letters(mail_dir: Path, since_wall: float) -> dict[tuple[str, str], list[float]]:
    """Every letter stored since `since_wall`, as (order id, kind) -> file mtimes. The sink keeps one
    file per Message-ID, so two files about the same order and kind are two different letters."""
    letters: dict[tuple[str, str], list[float]] = {}
    with contextlib.suppress(FileNotFoundError), os.scandir(mail_dir) as entries:
        for entry in entries:
            if not entry.name.endswith(".eml") or entry.name.startswith("."):
                continue
            with contextlib.suppress(OSError):
                mtime = entry.stat().st_mtime
                if mtime < since_wall:
                    continue
                with open(entry.path, "rb") as fh:
                    key = letter_key(fh.read(16384))
                if key is not None:
                    letters.setdefault(key, []).append(mtime)
    return letters


# -- Prometheus histograms -------------------------------------------------------------------------


@dataclass
class Histogram:
    """Cumulative bucket counts by upper bound (math.inf last), as Prometheus exposes them."""

    buckets: dict[float, float] = field(default_factory=dict)
    count: float = 0.0
    total: float = 0.0

    def minus(self, earlier: Histogram | None) -> Histogram:
        """What was observed since `earlier`; all of self when the process restarted in between
        (its counters went back to zero)."""
        if earlier is None or self.count < earlier.count:
            return self
        if any(n < earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()):
            return self
        return Histogram(
            {le: n - earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            self.count - earlier.count,
            self.total - earlier.total,
        )

    def plus(self, other: Histogram) -> Histogram:
        merged = dict(self.buckets)
        for le, n in other.buckets.items():
            merged[le] = merged.get(le, 0.0) + n
        return Histogram(merged, self.count + other.count, self.total + other.total)

    def quantile(self, q: float) -> float | None:
        """Estimate like PromQL's histogram_quantile: linear within the bucket; the largest finite
        bound when the quantile falls in the +Inf bucket."""
        if self.count <= 0:
            return None
        bounds = sorted(self.buckets)
        rank = q * self.count
        previous_bound, previous_count = 0.0, 0.0
        for le in bounds:
            cumulative = self.buckets[le]
            if cumulative >= rank:
                if le == float("inf"):
                    finite = [b for b in bounds if b != float("inf")]
                    return finite[-1] if finite else None
                if cumulative == previous_count:
                    return le
                return previous_bound + (le - previous_bound) * (rank - previous_count) / (
                    cumulative - previous_count
                )
            previous_bound, previous_count = le, cumulative
        return bounds[-1] if bounds else None

    def top_bucket_share(self) -> float:
        """The share of observations in the largest finite bucket and above it: when a quantile
        falls there, the bucket bounds say little (the value may be far beyond)."""
        finite = sorted(b for b in self.buckets if b != float("inf"))
        if self.count <= 0 or len(finite) < 2:
            return 0.0
        return (self.count - self.buckets.get(finite[-2], 0.0)) / self.count

    def as_dict(self) -> dict[str, Any]:
        finite = sorted(b for b in self.buckets if b != float("inf"))
        return {
            "count": int(self.count),
            "mean_s": self.total / self.count if self.count else None,
            "p50_s": self.quantile(0.50),
            "p95_s": self.quantile(0.95),
            "p99_s": self.quantile(0.99),
            "largest_bucket_s": finite[-1] if finite else None,
            "share_in_top_buckets": round(self.top_bucket_share(), 4),
        }


_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
_LE = re.compile(r'le="([^"]+)"')


def parse_histograms(text: str, name: str) -> Histogram | None:
    """The histogram `name` in a Prometheus text exposition, summed over all its label sets;
    `name{fragment` sums only the label sets whose text contains `fragment`."""
    name, _, fragment = name.partition("{")
    found = False
    hist = Histogram()
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        metric, labels, value = match.group("name"), match.group("labels") or "", float(match.group("value"))
        if fragment and fragment not in labels:
            continue
        if metric == f"{name}_bucket":
            le_match = _LE.search(labels)
            if le_match is None:
                continue
            le = float("inf") if le_match.group(1) == "+Inf" else float(le_match.group(1))
            hist.buckets[le] = hist.buckets.get(le, 0.0) + value
            found = True
        elif metric == f"{name}_count":
            hist.count += value
            found = True
        elif metric == f"{name}_sum":
            hist.total += value
    return hist if found else None


async def scrape_histograms(
    client: Http, service_urls: Mapping[str, str], names: Iterable[str]
) -> dict[str, dict[str, Histogram]]:
    """{metric: {service: histogram}} from every service's /metrics (services that do not answer or
    do not have the metric are left out)."""
    wanted = list(names)
    result: dict[str, dict[str, Histogram]] = defaultdict(dict)

    async def one(service: str, url: str) -> None:
        with contextlib.suppress(*HttpError):
            answer = await client.get(f"{url.rstrip('/')}/metrics", timeout=5.0)
            if answer.status_code != 200:
                return
            for name in wanted:
                hist = parse_histograms(answer.text, name)
                if hist is not None:
                    result[name][service] = hist

    await asyncio.gather(*(one(s, u) for s, u in service_urls.items()))
    return dict(result)


def histogram_delta(
    after: Mapping[str, Mapping[str, Histogram]], before: Mapping[str, Mapping[str, Histogram]], name: str
) -> tuple[Histogram | None, dict[str, Histogram]]:
    """What `name` observed between two scrapes: all services together, and per service."""
    per_service: dict[str, Histogram] = {}
    for service, hist in after.get(name, {}).items():
        delta = hist.minus(before.get(name, {}).get(service))
        if delta.count > 0:
            per_service[service] = delta
    if not per_service:
        return None, {}
    total = Histogram()
    for hist in per_service.values():
        total = total.plus(hist)
    return total, per_service


# -- CPU and memory of every process ---------------------------------------------------------------

BENCH_GROUP = "bench"  # the load generator itself
OTHER_GROUP = "other processes"  # the rest of the machine's busy CPU time
MACHINE = "_machine"

ProcessGroups = Callable[[], Mapping[str, Sequence[int]]]
"""Group name (a service, `postgres`, the broker: `nats` or `kafka`, ...) -> the pids at its root now."""


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
