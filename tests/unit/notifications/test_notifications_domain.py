"""Notification rules: which statuses get a letter, what it says, retries, and the contact cache."""

from __future__ import annotations

import asyncio

import pytest

from sandwich.platform.http import Response
from sandwich.services.notifications.domain import (
    KINDS,
    MAX_ATTEMPTS,
    MAX_RETRY_SECONDS,
    NotificationStatus,
    compose_letter,
    format_roubles,
    kind_for_status,
    message_id,
    retry_delay,
    status_after_failure,
)
from sandwich.services.notifications.ports import ContactBook, TtlCache

pytestmark = pytest.mark.unit

ORDER_ID = "c0ffee00-1234-4000-8000-000000000042"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        ("paid", "order_paid"),
        ("payment_failed", "order_payment_failed"),
        ("cancelled", "order_cancelled"),
        ("completed", "order_completed"),
        ("created", None),
        ("assigned", None),
        ("ready", None),
        ("in_delivery", None),
        ("nonsense", None),
    ],
)
def test_status_to_kind(status: str, kind: str | None) -> None:
    assert kind_for_status(status) == kind


@pytest.mark.parametrize(
    ("kopecks", "text"),
    [
        (0, "0.00 ₽"),
        (5, "0.05 ₽"),
        (45_000, "450.00 ₽"),
        (123_456, "1 234.56 ₽"),
        (100_000_000, "1 000 000.00 ₽"),
    ],
)
def test_roubles_are_formatted_from_kopecks(kopecks: int, text: str) -> None:
    assert format_roubles(kopecks) == text


@pytest.mark.parametrize("kind", KINDS)
def test_every_letter_greets_and_mentions_the_order_and_its_total(kind: str) -> None:
    letter = compose_letter(kind, name="Alice", order_id=ORDER_ID, total=123_456)
    assert letter.subject and "c0ffee00" in letter.subject
    assert "Hello, Alice!" in letter.body
    assert ORDER_ID in letter.body
    assert "1 234.56 ₽" in letter.body


def test_happy_and_sad_letters_differ_in_tone() -> None:
    happy = compose_letter("order_paid", name="Bob", order_id=ORDER_ID, total=100)
    sad = compose_letter("order_payment_failed", name="Bob", order_id=ORDER_ID, total=100)
    assert "Good news" in happy.body
    assert "sorry" in sad.body and "not enough money" in sad.body


def test_a_letter_without_a_known_total_still_reads_well() -> None:
    letter = compose_letter("order_cancelled", name="Bob", order_id=ORDER_ID, total=None)
    assert "None" not in letter.body and "₽" not in letter.body


def test_unknown_kind_is_an_error() -> None:
    with pytest.raises(ValueError):
        compose_letter("order_teleported", name="Bob", order_id=ORDER_ID, total=1)


def test_message_id_is_stable_per_notification() -> None:
    assert message_id("abc") == "<abc@sandwich>" == message_id("abc")


def test_retries_back_off_exponentially_up_to_a_ceiling() -> None:
    delays = [retry_delay(n) for n in range(1, 12)]
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0]
    assert delays == sorted(delays)
    assert max(delays) <= MAX_RETRY_SECONDS


def test_a_letter_is_given_up_after_the_last_attempt() -> None:
    assert status_after_failure(1) is NotificationStatus.PENDING
    assert status_after_failure(MAX_ATTEMPTS - 1) is NotificationStatus.PENDING
    assert status_after_failure(MAX_ATTEMPTS) is NotificationStatus.FAILED


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_entries_expire_after_the_ttl() -> None:
    clock = FakeClock()
    cache: TtlCache[str, str] = TtlCache(30, clock=clock)
    cache.put("u1", "alice@example.com")
    clock.now += 29.9
    assert cache.get("u1") == "alice@example.com"
    clock.now += 0.1
    assert cache.get("u1") is None
    assert len(cache) == 0


def test_putting_again_renews_the_entry() -> None:
    clock = FakeClock()
    cache: TtlCache[str, int] = TtlCache(10, clock=clock)
    cache.put("k", 1)
    clock.now += 8
    cache.put("k", 2)
    clock.now += 8
    assert cache.get("k") == 2


def test_a_full_cache_drops_expired_then_oldest_entries() -> None:
    clock = FakeClock()
    cache: TtlCache[str, int] = TtlCache(10, max_entries=2, clock=clock)
    cache.put("a", 1)
    clock.now += 5
    cache.put("b", 2)
    cache.put("c", 3)
    assert cache.get("a") is None
    assert (cache.get("b"), cache.get("c")) == (2, 3)
    clock.now += 6  # "a" would have expired by now; "b" and "c" are 6 s old
    cache.put("d", 4)
    assert cache.get("b") is None
    assert (cache.get("c"), cache.get("d")) == (3, 4)


def test_a_full_cache_prefers_dropping_expired_entries() -> None:
    clock = FakeClock()
    cache: TtlCache[str, int] = TtlCache(10, max_entries=2, clock=clock)
    cache.put("old", 1)
    clock.now += 1
    cache.put("young", 2)
    clock.now += 9.5  # "old" has expired, "young" has not
    cache.put("new", 3)
    assert (cache.get("young"), cache.get("new")) == (2, 3)


def test_zero_ttl_caches_nothing() -> None:
    cache: TtlCache[str, int] = TtlCache(0, clock=FakeClock())
    cache.put("k", 1)
    assert cache.get("k") is None


class FakeUsers:
    """Stands in for the users service: counts calls, answers once released."""

    def __init__(self, status: int = 200) -> None:
        self.calls = 0
        self.status = status
        self.release = asyncio.Event()

    async def request(self, service: str, method: str, path: str, **_: object) -> Response:
        self.calls += 1
        await self.release.wait()
        user_id = path.rsplit("/", 1)[1]
        body = {"user_id": user_id, "username": "bob", "email": "bob@example.com", "full_name": None}
        return Response(self.status, body if self.status == 200 else None)


USER_ID = "22222222-2222-2222-2222-222222222222"


async def test_concurrent_lookups_share_one_call_and_the_answer_is_cached() -> None:
    users = FakeUsers()
    book = ContactBook(users, 30, clock=FakeClock())  # type: ignore[arg-type]
    waiters = [asyncio.ensure_future(book.contact(USER_ID)) for _ in range(5)]
    await asyncio.sleep(0)
    users.release.set()
    contacts = await asyncio.gather(*waiters)
    assert {c.email for c in contacts if c} == {"bob@example.com"}
    assert contacts[0] is not None and contacts[0].greeting_name == "bob"
    await book.contact(USER_ID)
    assert users.calls == 1


async def test_an_unknown_user_is_not_cached() -> None:
    users = FakeUsers(status=404)
    users.release.set()
    book = ContactBook(users, 30, clock=FakeClock())  # type: ignore[arg-type]
    assert await book.contact(USER_ID) is None
    assert await book.contact(USER_ID) is None
    assert users.calls == 2
