"""The async flow's order intake at the gateway (ADR 002): what it checks, the id it derives, what it
publishes, and its answer when the broker does not acknowledge."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from sandwich.platform.app import Service
from sandwich.platform.bus.base import BusUnavailable
from sandwich.platform.events import ORDER_CREATE_REQUESTED, TOPIC_ORDERS_CREATE, Envelope
from sandwich.platform.identity import Identity
from sandwich.platform.settings import Settings
from sandwich.services.gateway.intake import OrderIntake, order_id_for

pytestmark = pytest.mark.unit

ALICE = Identity("7f6a3c1e-0000-4000-8000-0000000000a1", "alice", frozenset({"customer"}))
ITEM = "7f6a3c1e-0000-4000-8000-000000000001"
BODY = {
    "items": [{"menu_item_id": ITEM, "quantity": 2}],
    "delivery": {"address": "Tverskaya 1", "lat": 55.7, "lon": 37.6},
}


class FakeBus:
    """Records publishes; `failure` makes the next ones raise, `delay` makes them hang."""

    name = "fake"

    def __init__(self) -> None:
        self.published: list[tuple[str, str, bytes]] = []
        self.failure: Exception | None = None
        self.delay = 0.0

    async def publish(
        self, topic: str, key: str, value: bytes, headers: dict[str, str] | None = None
    ) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failure is not None:
            raise self.failure
        self.published.append((topic, key, value))


def intake(bus: FakeBus, timeout: float = 1.8) -> OrderIntake:
    service = Service("gateway", title="gateway under test", settings=Settings(service="gateway"))
    service.bus = bus  # type: ignore[assignment]
    return OrderIntake(service, publish_timeout_seconds=timeout)


async def accept(bus: FakeBus, body: Any = BODY, key: str | None = "k-1", **kwargs: float) -> tuple[int, Any]:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    answer = await intake(bus, **kwargs).accept(ALICE, raw, key)
    return answer.status_code, orjson.loads(answer.body)


async def test_a_valid_order_is_published_to_orders_create_and_answered_202() -> None:
    bus = FakeBus()
    status, body = await accept(bus)
    assert status == 202 and body["status"] == "created" and body["username"] == "alice"
    assert body["items"] == [{"menu_item_id": ITEM, "quantity": 2}]
    [(topic, key, value)] = bus.published
    envelope = Envelope.from_bytes(value)
    assert topic == TOPIC_ORDERS_CREATE and key == ALICE.user_id  # a customer's requests in order
    assert envelope.key == body["order_id"]
    assert envelope.type == ORDER_CREATE_REQUESTED and envelope.producer == "gateway"
    assert envelope.payload["user_id"] == ALICE.user_id and envelope.payload["idempotency_key"] == "k-1"
    assert envelope.payload["items"] == [{"menu_item_id": ITEM, "quantity": 2}]


async def test_a_repeated_request_names_the_same_order_and_another_body_another_one() -> None:
    bus = FakeBus()
    first = (await accept(bus))[1]["order_id"]
    assert (await accept(bus))[1]["order_id"] == first
    other = {**BODY, "items": [{"menu_item_id": ITEM, "quantity": 3}]}
    assert (await accept(bus, other))[1]["order_id"] != first
    assert (await accept(bus, key=None))[1]["order_id"] != (await accept(bus, key=None))[1]["order_id"]


def test_order_ids_are_per_user_and_key() -> None:
    assert order_id_for("u1", "k", "h") == order_id_for("u1", "k", "h")
    assert order_id_for("u1", "k", "h") != order_id_for("u2", "k", "h")
    assert order_id_for("u1", "k", "h") != order_id_for("u1", "k2", "h")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"", 400, "missing_body"),
        (b"{not json", 400, "malformed_json"),
        ({"delivery": {"address": "x", "lat": 100, "lon": 0}}, 422, "invalid_field"),
        ({**BODY, "items": []}, 422, "invalid_field"),
        ({**BODY, "items": [{"menu_item_id": ITEM, "quantity": "2"}]}, 422, "invalid_field"),
        ({**BODY, "extra": 1}, 422, "invalid_field"),
    ],
)
async def test_what_the_gateway_can_judge_is_refused_before_anything_is_published(
    body: Any, status: int, code: str
) -> None:
    bus = FakeBus()
    answer = await accept(bus, body)
    assert answer[0] == status and answer[1]["error"]["code"] == code
    assert bus.published == []


async def test_a_blank_idempotency_key_is_422() -> None:
    bus = FakeBus()
    status, body = await accept(bus, key="   ")
    assert status == 422 and body["error"]["code"] == "invalid_idempotency_key" and bus.published == []


async def test_the_broker_refusing_is_503_broker_unavailable() -> None:
    bus = FakeBus()
    bus.failure = BusUnavailable("not connected")
    status, body = await accept(bus)
    assert status == 503 and body["error"]["code"] == "broker_unavailable"


async def test_a_broker_that_does_not_answer_is_503_within_the_timeout() -> None:
    bus = FakeBus()
    bus.delay = 5.0
    began = asyncio.get_running_loop().time()
    status, body = await accept(bus, timeout=0.2)
    assert status == 503 and body["error"]["code"] == "broker_unavailable"
    assert asyncio.get_running_loop().time() - began < 1.0
