"""The read model's rules: how an order event changes the view of an order, and who may read it.

Events arrive at least once and, across redeliveries, not necessarily in order. The rule that makes
the view converge anyway: a history entry is keyed by (order, version) and is added only if absent;
the view is replaced only by an event with a higher version than the one it shows. So a duplicate
changes nothing, a stale event changes only the history it was missing, and any permutation of the
same events ends in the same view and the same history.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

# The order as the customer sees it: the write side's snapshot minus what is internal to it.
PUBLIC_FIELDS = (
    "order_id",
    "username",
    "status",
    "items",
    "total",
    "delivery",
    "food_point_id",
    "courier",
    "payment_operation_id",
    "reason",
    "created_at",
    "updated_at",
)


# After one of these an order changes no more: its live stream ends.
TERMINAL_STATUSES = frozenset({"completed", "cancelled", "payment_failed", "rejected"})


class InvalidOrderEvent(ValueError):
    """An event the read model cannot apply (a malformed time or version)."""


def parse_time(value: str) -> datetime:
    """RFC 3339 text to an aware UTC datetime; a time without an offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError) as exc:
        raise InvalidOrderEvent(f"not an RFC 3339 time: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _check_uuid(name: str, value: Any) -> None:
    try:
        uuid.UUID(str(value))
    except ValueError as exc:
        raise InvalidOrderEvent(f"{name} is not a UUID: {value!r}") from exc


@dataclass(frozen=True)
class HistoryEntry:
    version: int
    status: str
    at: datetime
    trace_id: str = ""  # the trace of the request that made this status (for the operations console)


@dataclass(frozen=True)
class OrderView:
    order_id: str
    user_id: str
    username: str
    status: str
    version: int
    snapshot: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class OrderUpdate:
    """One OrderEvent as the read model needs it: the envelope's version and the payload's facts."""

    version: int
    status: str
    at: datetime
    snapshot: Mapping[str, Any]
    trace_id: str = ""

    @classmethod
    def from_event(cls, version: int, event: Mapping[str, Any], trace_id: str = "") -> OrderUpdate:
        """From an OrderEvent payload (status, at, order snapshot) already checked for shape."""
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidOrderEvent(f"version must be a positive integer, not {version!r}")
        snapshot = dict(event["order"])
        for name in ("order_id", "user_id"):
            _check_uuid(name, snapshot[name])
        for name in ("created_at", "updated_at"):
            parse_time(snapshot[name])
        return cls(
            version=version,
            status=str(event["status"]),
            at=parse_time(event["at"]),
            snapshot=snapshot,
            trace_id=trace_id,
        )

    @property
    def order_id(self) -> str:
        return str(self.snapshot["order_id"])

    def history_entry(self) -> HistoryEntry:
        return HistoryEntry(self.version, self.status, self.at, self.trace_id)

    def view(self) -> OrderView:
        # The event's status wins over the snapshot's: they agree for a sane producer, and the event's
        # status is what the history records for this version.
        snapshot = {**self.snapshot, "status": self.status}
        return OrderView(
            order_id=self.order_id,
            user_id=str(snapshot["user_id"]),
            username=str(snapshot["username"]),
            status=self.status,
            version=self.version,
            snapshot=snapshot,
            created_at=parse_time(snapshot["created_at"]),
            updated_at=parse_time(snapshot["updated_at"]),
        )


def supersedes(stored_version: int | None, incoming_version: int) -> bool:
    """Only a strictly newer version replaces the view: duplicates and stale events change nothing."""
    return stored_version is None or incoming_version > stored_version


def next_view(current: OrderView | None, update: OrderUpdate) -> OrderView | None:
    """The view to store after `update`, or None when the stored view stays as it is."""
    if not supersedes(current.version if current else None, update.version):
        return None
    return update.view()


@dataclass(frozen=True)
class OrderRecord:
    """Everything the read model holds about one order (what storage keeps in two tables)."""

    view: OrderView | None = None
    history: Mapping[int, HistoryEntry] = field(default_factory=dict)


def apply_update(record: OrderRecord, update: OrderUpdate) -> OrderRecord:
    """The whole rule on in-memory state: the history entry if absent, the view if newer."""
    history = record.history
    if update.version not in history:
        history = {**history, update.version: update.history_entry()}
    view = next_view(record.view, update) or record.view
    return replace(record, view=view, history=history)


class OrderNotFound(LookupError):
    """No such order for this reader: unknown, or someone else's (answered alike, so a customer
    cannot tell whether another's order exists)."""


@dataclass(frozen=True)
class Reader:
    """Who reads: a customer sees their own orders; an admin every order, with trace ids."""

    user_id: str
    is_admin: bool = False


def has_ended(entry: HistoryEntry, seen_version: int) -> bool:
    """Whether a reader who has seen `seen_version` has seen the end of an order whose view shows
    `entry`: nothing more will come for them."""
    return entry.status in TERMINAL_STATUSES and seen_version >= entry.version


def may_read(owner_user_id: str, caller_user_id: str, caller_is_admin: bool) -> bool:
    """An order is visible to the customer who placed it and to admins; to anyone else it does not exist."""
    return caller_is_admin or owner_user_id == caller_user_id


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def public_order(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The contract's order shape from a snapshot (optional fields present, as null, when unknown)."""
    return {name: snapshot.get(name) for name in PUBLIC_FIELDS}


def public_history(entries: Iterable[HistoryEntry], *, with_traces: bool = False) -> list[dict[str, str]]:
    """The order's statuses, oldest first; for an admin also each one's `trace_id` (where known), so
    the operations console can link a status to the trace of the request that made it."""
    return [
        {"status": entry.status, "at": rfc3339(entry.at)}
        | ({"trace_id": entry.trace_id} if with_traces and entry.trace_id else {})
        for entry in sorted(entries, key=lambda entry: entry.version)
    ]
