"""What became of a phase's orders, read after it from the platform's public API and the mail sink.

`collect_outcomes` reads every order of the phase, every notification and every payment of the
bench's customers, and the letters in the mail sink. From the platform's own timestamps it gives
create -> paid and create -> letter for *every* order, commit -> consumer lag (order paid at ->
notification created at), and the checks of the fault scenarios (faults.py)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import os
import quopri
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sandwich.bench.client import Http, HttpError
from sandwich.bench.customers import Customer
from sandwich.bench.load import Record

LIST_LIMIT = 200  # GET /api/v1/orders and /api/v1/notifications answer at most this many


OPERATIONS_LIMIT = 1000


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


def parse_time(value: str | None) -> float | None:
    """An RFC 3339 time of the API as a Unix timestamp."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
