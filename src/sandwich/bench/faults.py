"""The fault scenarios of `sandwich bench --compare`, injected by the benchmark through `Platform`,
and the checks after recovery.

Each scenario runs while the load runs: it is injected `start` seconds into the phase and lifted
`length` seconds later (or is in place for the whole phase). After the phase the benchmark waits
for the platform to recover and then checks, through the public API and the mail sink only:
every order of the phase left `created`, or accepted and never stored (unfinished: must be 0), more
than one payment for an order (duplicate charge: must be 0), more than one notification or letter of
a kind for an order (duplicate letter: must be 0). A create call the platform refused (an error
answer, such as async's 503 `broker_unavailable` while the broker is down) took no order: it is
one of the phase's errors, by kind, and never an unfinished order.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sandwich.bench.stats import percentiles
from sandwich.platform.settings import Flow

if TYPE_CHECKING:
    from sandwich.bench.load import Record
    from sandwich.bench.outcomes import Outcomes
    from sandwich.supervisor import Platform

FAULT_DELAY_ENV = "SANDWICH_FAULT_DELAY_MS"
"""Read by billing's operate route (the lead's knob): answer that many milliseconds late."""

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Fault:
    name: str
    title: str
    start: float  # seconds into the phase; 0 with whole_phase
    length: float
    inject: Callable[[Platform], None]
    lift: Callable[[Platform], None]
    applies: Callable[[Flow], str | None]  # None when it applies, else why not
    whole_phase: bool = False  # injected before the phase, lifted after it

    def window(self, duration: float) -> tuple[float, float]:
        if self.whole_phase:
            return 0.0, duration
        return self.start, min(duration, self.start + self.length)


def _always(_: Flow) -> str | None:
    return None


def _needs_broker(flow: Flow) -> str | None:
    return "the sync flow has no broker" if flow is Flow.SYNC else None


def _kill(name: str) -> Callable[[Platform], None]:
    def inject(platform: Platform) -> None:
        platform.kill_service(name)

    return inject


def _start(name: str) -> Callable[[Platform], None]:
    def lift(platform: Platform) -> None:
        platform.start_service(name)

    return lift


def _stop_broker(platform: Platform) -> None:
    platform.stop_broker()


def _start_broker(platform: Platform) -> None:
    platform.start_broker()


def _billing_with_env(value: str | None) -> Callable[[Platform], None]:
    """Restart billing with SANDWICH_FAULT_DELAY_MS set (or unset): the supervisor spawns a service
    with its current environment, and billing is the only service that reads this variable."""

    def apply(platform: Platform) -> None:
        if value is None:
            platform._env.pop(FAULT_DELAY_ENV, None)
        else:
            platform._env[FAULT_DELAY_ENV] = value
        platform.kill_service("billing")
        platform.start_service("billing")

    return apply


def scenarios(duration: float, *, down_for: float = 10.0) -> list[Fault]:
    """The four faults of the issue, for phases of `duration` seconds."""
    start = max(1.0, min(5.0, (duration - down_for) / 3))
    length = min(down_for, max(1.0, duration - start - 1.0))
    return [
        Fault(
            "notifications_down",
            "notifications down",
            start,
            length,
            _kill("notifications"),
            _start("notifications"),
            _always,
        ),
        Fault(
            "billing_slow",
            "billing answers 200 ms late",
            0.0,
            duration,
            _billing_with_env("200"),
            _billing_with_env(None),
            _always,
            whole_phase=True,
        ),
        Fault("users_down", "users down", start, length, _kill("users"), _start("users"), _always),
        Fault(
            "broker_down",
            f"broker down for {length:g} s",
            start,
            length,
            _stop_broker,
            _start_broker,
            _needs_broker,
        ),
    ]


# -- what the create calls met ---------------------------------------------------------------------


def while_in_place(records: Sequence[Record], moments: Mapping[str, float]) -> dict[str, Any]:
    """What the create calls met while the fault was surely in place: those sent after its injection
    had finished and before its lift began (`moments`: phase seconds, as run_phase notes them); and,
    over the whole phase, each kind of error with the time from sending the call to its answer (the
    API promises async's 503 `broker_unavailable` within 2 s)."""
    began, ended = moments.get("inject_done"), moments.get("lift_began")
    inside = (
        [r for r in records if began <= r.t_sent < ended] if began is not None and ended is not None else []
    )
    failed: dict[str, list[float]] = {}
    for record in records:
        if record.error:
            failed.setdefault(record.error, []).append(record.t_sched + record.latency - record.t_sent)
    return {
        "from_s": began,
        "until_s": ended,
        "sent": len(inside),
        "taken": sum(1 for r in inside if r.ok),
        "errors": dict(Counter(r.error for r in inside if r.error)),
        "errors_in_phase": {
            kind: {"count": len(times), "answered_within_s": percentiles(times)}
            for kind, times in failed.items()
        },
    }


# -- checks after recovery -------------------------------------------------------------------------


def duplicates(counts: Mapping[K, Any]) -> dict[K, int]:
    """Keys seen more than once: `counts` maps a key to a number or to a list of sightings."""
    found: dict[K, int] = {}
    for key, value in counts.items():
        n = len(value) if isinstance(value, list | tuple | set) else int(value)
        if n > 1:
            found[key] = n
    return found


def extra(found: Mapping[Any, int]) -> int:
    """How many sightings beyond the first, over all duplicated keys."""
    return sum(n - 1 for n in found.values())


NOT_PAID = ("created", "payment_failed", "rejected")
"""Statuses of an order never paid (async's `rejected` is born terminal, nothing charged)."""


def recovery_checks(outcomes: Outcomes, settle_seconds: float) -> dict[str, Any]:
    """The numbers that must be 0 after recovery, and what they were counted from."""
    statuses = outcomes.statuses()
    paid_orders = {o for o, view in outcomes.orders.items() if view.status not in NOT_PAID}
    charges = duplicates(outcomes.payments)
    notes = duplicates(outcomes.notifications)
    letters = duplicates(outcomes.letters)
    told = {order for (order, kind) in outcomes.notifications if kind == "order_paid"}
    lettered = {order for (order, kind) in outcomes.letters if kind == "order_paid"}
    return {
        "settle_s": round(settle_seconds, 1),
        "orders": len(outcomes.orders),
        "statuses": dict(statuses),
        "unfinished": len(outcomes.unfinished()),
        "unfinished_ids": outcomes.unfinished()[:20],
        "accepted_not_stored": len(outcomes.not_stored),
        # paid in billing, still `created` in the read model: the change is not passed on
        "unfinished_but_charged": sum(1 for o in outcomes.unfinished() if outcomes.payments.get(o, 0) > 0),
        "duplicate_charges": extra(charges),
        "duplicate_charge_orders": sorted(charges)[:20],
        "duplicate_notifications": extra(notes),
        "duplicate_letters": extra(letters),
        "paid_without_notification": len(paid_orders - told),
        "paid_without_letter": len(paid_orders - lettered),
        "paid_without_payment": len([o for o in paid_orders if outcomes.payments.get(o, 0) == 0]),
        "missing_from_read_model": outcomes.missing_from_read_model,
        "unreadable": outcomes.unreadable,
    }


def settled(outcomes: Outcomes, *, want_letters: bool) -> bool:
    """Nothing left to wait for: no order `created`, and (when letters are expected) a notification
    and a letter for every paid order."""
    if outcomes.unfinished():
        return False
    if not want_letters:
        return True
    checks = recovery_checks(outcomes, 0.0)
    return checks["paid_without_notification"] == 0 and checks["paid_without_letter"] == 0


class Stopwatch:
    def __init__(self) -> None:
        self.began = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.began
