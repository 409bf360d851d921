"""One order is one trace: from the gateway through orders and billing, the relay's publish and the
broker, to the consumers in order_info, notifications and kitchen, with no span whose parent is
missing; through a broker, each consumer's span is the child of the producer's and linked to it.

The platforms of the suite export to the test's own OTLP receiver (tests/e2e/conftest.py) and sample
only what a caller asks for: the test sends a sampled W3C `traceparent` of its own with the order.
"""

from __future__ import annotations

import secrets
import uuid

import pytest

from sandwich.supervisor import Platform
from tests.e2e.client import Api, eventually
from tests.e2e.world import World
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.e2e


def _consumers(spans: list[ReceivedSpan], service: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.service == service and s.kind == "consumer"]


def _complete(spans: list[ReceivedSpan], flow: str) -> bool:
    """Every part the trace must have has arrived (the batch exporters send within ~0.2 s)."""
    services = {s.service for s in spans}
    if not {"gateway", "orders", "billing", "order_info", "notifications", "kitchen"} <= services:
        return False
    if not any(s.kind == "producer" for s in spans):
        return False
    wanted = ("order_info", "kitchen") if flow == "sync" else ("order_info", "notifications", "kitchen")
    return all(_consumers(spans, service) for service in wanted)


async def test_one_order_is_one_trace_across_the_services_and_the_broker(
    api: Api, admin: Api, platform: Platform, trace_receiver: OtlpReceiver
) -> None:
    world = await World.create(admin)
    await world.food_point(1.0)
    customer = await api.new_customer(deposit=100_000)
    trace_id, caller_span = uuid.uuid4().hex, secrets.token_hex(8)
    lat, lon = world.spot(0.0)
    answer = await customer.post(
        "/api/v1/order",
        json={
            "items": [{"menu_item_id": world.item["id"], "quantity": 1}],
            "delivery": {"address": "the trace's own street", "lat": lat, "lon": lon},
        },
        headers={"Idempotency-Key": uuid.uuid4().hex, "traceparent": f"00-{trace_id}-{caller_span}-01"},
    )
    order = await customer.settled(answer)
    assert order["status"] == "paid", order
    flow = platform.flow.value

    async def arrived() -> bool:
        return _complete(trace_receiver.trace(trace_id), flow)

    await eventually(arrived, timeout=30)
    spans = trace_receiver.trace(trace_id)
    by_id = {s.span_id: s for s in spans}

    (root,) = [s for s in spans if s.parent_span_id not in by_id]  # no orphans: one root only
    assert (root.service, root.kind, root.name) == ("gateway", "server", "POST /api/v1/order")
    assert root.parent_span_id == caller_span  # the caller's context was taken up

    producers = {s.span_id for s in spans if s.kind == "producer"}
    assert any(by_id[p].service == "orders" and by_id[p].name == "publish order.events" for p in producers)
    for consumer in (s for s in spans if s.kind == "consumer"):
        if flow == "sync":  # pushed over HTTP: the child of the push's request
            assert by_id[consumer.parent_span_id].kind == "server"
        else:  # through the broker: the child of the producer's span, and linked to it
            assert consumer.parent_span_id in producers, consumer
            assert consumer.links == (consumer.parent_span_id,), consumer
    assert any(s.name == "db.transaction" for s in spans)

    async def in_the_read_model() -> bool:
        return (await admin.get(f"/api/v1/orders/{order['order_id']}")).status_code == 200

    await eventually(in_the_read_model)
    seen_by_admin = (await admin.get(f"/api/v1/orders/{order['order_id']}")).json()
    history = seen_by_admin["history"]
    assert history[0]["trace_id"] == trace_id  # the console links the order to this trace
    assert all(len(entry["trace_id"]) == 32 for entry in history)  # later steps: their own requests' traces
    seen_by_customer = (await customer.get(f"/api/v1/orders/{order['order_id']}")).json()
    assert all("trace_id" not in entry for entry in seen_by_customer["history"])
