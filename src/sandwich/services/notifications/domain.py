"""Notification rules: which order statuses deserve a letter, what the letter says, and how sending
is retried.

A letter is due once per (order, kind) however often the event behind it is redelivered: the kind
follows from the status alone, so a redelivered event asks for the same (order, kind) again and the
store refuses the second copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

CHANNEL_EMAIL = "email"

KIND_ORDER_PAID = "order_paid"
KIND_ORDER_PAYMENT_FAILED = "order_payment_failed"
KIND_ORDER_CANCELLED = "order_cancelled"
KIND_ORDER_COMPLETED = "order_completed"
KINDS = (KIND_ORDER_PAID, KIND_ORDER_PAYMENT_FAILED, KIND_ORDER_CANCELLED, KIND_ORDER_COMPLETED)

# Order status -> the letter it deserves. Statuses not listed (created, assigned, ready, in_delivery)
# are steps the customer follows in the app; a letter for each would be noise.
KIND_BY_STATUS: dict[str, str] = {
    "paid": KIND_ORDER_PAID,
    "payment_failed": KIND_ORDER_PAYMENT_FAILED,
    "cancelled": KIND_ORDER_CANCELLED,
    "completed": KIND_ORDER_COMPLETED,
}

# Sending: give up after this many attempts; wait longer after every failure, up to a ceiling.
MAX_ATTEMPTS = 10
FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 300.0

SIGNATURE = "Bon appétit,\nThe Sandwich team"


class NotificationStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


def kind_for_status(status: str) -> str | None:
    """The letter an order status deserves, or None when it deserves none."""
    return KIND_BY_STATUS.get(status)


def format_roubles(kopecks: int) -> str:
    """Kopecks as roubles for people: 123456 -> '1 234.56 ₽' (space-grouped, never via float)."""
    sign = "-" if kopecks < 0 else ""
    roubles, rest = divmod(abs(kopecks), 100)
    return f"{sign}{roubles:,}.{rest:02d} ₽".replace(",", " ")


@dataclass(frozen=True)
class Contact:
    """Where a user's letters go, from the users service."""

    user_id: str
    username: str
    email: str | None
    full_name: str | None = None

    @property
    def greeting_name(self) -> str:
        return (self.full_name or "").strip() or self.username


@dataclass(frozen=True)
class Letter:
    subject: str
    body: str


@dataclass(frozen=True)
class RecordLetter:
    """A command: this order reached a status that deserves the letter of `kind`."""

    user_id: str
    order_id: str | None
    kind: str
    username: str | None
    total: int | None


@dataclass(frozen=True)
class NewNotification:
    """A letter to store, addressed and written."""

    notification_id: str
    user_id: str
    order_id: str | None
    kind: str
    channel: str
    recipient: str | None
    subject: str
    body: str
    status: NotificationStatus
    last_error: str | None = None


@dataclass(frozen=True)
class Notification:
    """A stored letter as its reader sees it."""

    notification_id: str
    order_id: str | None
    kind: str
    channel: str
    subject: str
    body: str
    status: str
    created_at: datetime


@dataclass(frozen=True)
class Recorded:
    """The letter of an (order, kind): `created` False when it was stored before."""

    notification: Notification
    created: bool


@dataclass(frozen=True)
class Outgoing:
    """A pending letter picked for sending."""

    notification_id: str
    recipient: str
    subject: str
    body: str
    attempts: int


@dataclass(frozen=True)
class FailedAttempt:
    """A letter that did not go out this time: its attempts so far and what it is now."""

    notification_id: str
    attempts: int
    status: NotificationStatus
    error: str


def short_order_id(order_id: str) -> str:
    """The first block of the uuid: enough for a person to tell orders apart in a subject line."""
    return order_id.split("-")[0][:8] or order_id


def compose_letter(kind: str, *, name: str, order_id: str | None, total: int | None) -> Letter:
    """The friendly letter of one kind; mentions the order id and, when known, its total."""
    order = order_id or "(no order id)"
    short = short_order_id(order_id) if order_id else "your order"
    amount = format_roubles(total) if total is not None else None
    for_amount = f" for {amount}" if amount else ""
    of_amount = f" of {amount}" if amount else ""
    greeting = f"Hello, {name}!"
    if kind == KIND_ORDER_PAID:
        return Letter(
            subject=f"Order {short} is paid - thank you!",
            body=(
                f"{greeting}\n\n"
                f"Good news: we received your payment{of_amount} for order {order}.\n"
                "A food point near you will start cooking shortly, and a courier will bring it to your door.\n"
                "You can follow every step of your order in the app.\n\n"
                f"Thank you for ordering with us!\n{SIGNATURE}\n"
            ),
        )
    if kind == KIND_ORDER_PAYMENT_FAILED:
        return Letter(
            subject=f"Order {short}: we could not take the payment",
            body=(
                f"{greeting}\n\n"
                f"We are sorry: there was not enough money on your account to pay{for_amount} "
                f"for order {order}, so we could not accept it.\n"
                "Nothing was charged. Top up your balance and place the order again - "
                "your sandwiches will be waiting.\n\n"
                f"{SIGNATURE}\n"
            ),
        )
    if kind == KIND_ORDER_CANCELLED:
        return Letter(
            subject=f"Order {short} was cancelled",
            body=(
                f"{greeting}\n\n"
                f"Your order {order}{for_amount} has been cancelled.\n"
                "If you had already paid for it, the money is back on your account balance.\n"
                "We hope to cook for you again soon.\n\n"
                f"{SIGNATURE}\n"
            ),
        )
    if kind == KIND_ORDER_COMPLETED:
        return Letter(
            subject=f"Order {short} is delivered - enjoy your meal!",
            body=(
                f"{greeting}\n\n"
                f"Your order {order}{for_amount} has been delivered.\n"
                "Enjoy your sandwiches, and thank you for choosing us!\n\n"
                f"{SIGNATURE}\n"
            ),
        )
    raise ValueError(f"unknown notification kind: {kind!r}")


def message_id(notification_id: str) -> str:
    """The Message-ID of a notification's letter: the same on every resend, so a receiver can dedupe."""
    return f"<{notification_id}@sandwich>"


def retry_delay(attempts_made: int) -> float:
    """Seconds to wait before the next attempt after `attempts_made` failed ones (exponential, capped)."""
    return min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** max(0, attempts_made - 1))


def status_after_failure(attempts_made: int) -> NotificationStatus:
    """A failed letter stays pending for another try until MAX_ATTEMPTS, then it is given up."""
    return NotificationStatus.FAILED if attempts_made >= MAX_ATTEMPTS else NotificationStatus.PENDING
