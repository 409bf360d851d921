"""The bus contract of `sandwich.platform.bus.base`, checked against both adapters on real brokers.

The same tests run for NATS JetStream and for Apache Kafka, so the services can switch brokers
without noticing: durable publish, per-key order, groups sharing work (also when a member joins
mid-stream), redelivery of what was never acknowledged, dead-lettering of poison messages, a bus
that starts while the broker is down, and a publish that fails fast while the broker is down and
works again (with the subscriptions) once it is back.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from sandwich.platform.bus.base import (
    DLQ_HEADER_ATTEMPTS,
    DLQ_HEADER_ERROR,
    DLQ_HEADER_GROUP,
    DLQ_HEADER_ORIGINAL_TOPIC,
    BusUnavailable,
    EventBus,
    Message,
    Outgoing,
    PublishResult,
    dead_letter_topic,
)
from sandwich.platform.bus.factory import BusNotConfigured, make_bus
from sandwich.platform.bus.kafka import KafkaBus
from sandwich.platform.bus.nats import NatsBus
from sandwich.platform.embedded.apache_kafka import EmbeddedApacheKafka
from sandwich.platform.embedded.brokers import EmbeddedNats
from sandwich.platform.settings import Settings
from tests.integration.bus.conftest import BusMaker, Inbox, eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

TOPIC = "order.events"
# Generous: a Kafka group member gets partitions only once the join completes.
DELIVERY_TIMEOUT = 30.0


async def test_publish_and_consume_round_trip(buses: BusMaker) -> None:
    bus = await buses.started()
    await bus.ensure_topics([TOPIC])
    assert await bus.healthy()
    inbox = Inbox()
    await bus.subscribe(TOPIC, "round-trip", inbox.handler)

    await bus.publish(TOPIC, "order-1", b'{"status": "paid"}', {"event-type": "OrderEvent"})

    await eventually(lambda: len(inbox.messages) == 1, timeout=DELIVERY_TIMEOUT, what="the message")
    (message,) = inbox.messages
    assert message.topic == TOPIC
    assert message.key == "order-1"
    assert message.value == b'{"status": "paid"}'
    assert message.headers == {"event-type": "OrderEvent"}
    assert message.delivery_attempt == 1


async def test_messages_of_a_key_arrive_in_publish_order(buses: BusMaker) -> None:
    bus = await buses.started()
    await bus.ensure_topics([TOPIC])
    inbox = Inbox()
    await bus.subscribe(TOPIC, "ordering", inbox.handler)
    keys = ["order-a", "order-b", "order-c"]

    for seq in range(50):
        for key in keys:
            await bus.publish(TOPIC, key, f"{key}:{seq}".encode())

    await eventually(lambda: len(inbox.messages) == 150, timeout=DELIVERY_TIMEOUT, what="150 messages")
    for key in keys:
        sequence = [int(m.value.decode().split(":")[1]) for m in inbox.messages if m.key == key]
        assert sequence == list(range(50)), f"{key} arrived out of order: {sequence}"


async def test_a_published_batch_is_stored_whole_and_in_order(buses: BusMaker) -> None:
    bus = await buses.started()
    await bus.ensure_topics([TOPIC])
    inbox = Inbox()
    await bus.subscribe(TOPIC, "batch", inbox.handler)
    batch = [
        Outgoing(TOPIC, f"order-{seq % 3}", f"order-{seq % 3}:{seq}".encode(), message_id=f"event-{seq}")
        for seq in range(300)
    ]

    result = await bus.publish_many(batch)

    assert result == PublishResult(300)
    await eventually(lambda: len(inbox.messages) == 300, timeout=DELIVERY_TIMEOUT, what="300 messages")
    for key in ("order-0", "order-1", "order-2"):
        got = [int(m.value.decode().split(":")[1]) for m in inbox.messages if m.key == key]
        assert got == [seq for seq in range(300) if f"order-{seq % 3}" == key], f"{key} out of order"
    assert await bus.publish_many([]) == PublishResult(0)


def _kinded_batch() -> list[Outgoing]:
    """Three keys, each with events of kinds paid, assigned and none, interleaved."""
    kinds = ("paid", "assigned", "")
    return [
        Outgoing(
            TOPIC,
            f"order-{seq % 3}",
            f"order-{seq % 3}:{seq}:{kinds[seq % 7 % 3]}".encode(),
            kind=kinds[seq % 7 % 3],
        )
        for seq in range(60)
    ]


async def test_a_group_asking_for_some_kinds_gets_them_and_the_kindless_in_order(buses: BusMaker) -> None:
    bus = await buses.started()
    await bus.ensure_topics([TOPIC])
    narrow, everything = Inbox(), Inbox()
    await bus.subscribe(TOPIC, "narrow", narrow.handler, kinds={"paid"})
    await bus.subscribe(TOPIC, "everything", everything.handler)
    batch = _kinded_batch()

    assert await bus.publish_many(batch) == PublishResult(len(batch))

    wanted = [m for m in batch if m.kind in ("paid", "")]
    await eventually(lambda: len(everything.messages) == len(batch), timeout=DELIVERY_TIMEOUT, what="all")
    wanted_values = {m.value for m in wanted}
    # A broker that cannot route by kind (Kafka) sends more, so a count could be reached early.
    await eventually(
        lambda: wanted_values <= {m.value for m in narrow.messages}, timeout=DELIVERY_TIMEOUT, what="wanted"
    )
    for inbox in (narrow, everything):
        for key in ("order-0", "order-1", "order-2"):
            seqs = [int(m.value.decode().split(":")[1]) for m in inbox.messages if m.key == key]
            assert seqs == sorted(seqs), f"{key} out of order"


async def test_on_nats_a_group_never_receives_the_kinds_it_did_not_ask_for(nats_url: str) -> None:
    """NATS routes by kind on the server (a subject per kind); Kafka delivers the whole topic."""
    buses = BusMaker("nats", nats_url)
    try:
        bus = await buses.started()
        await bus.ensure_topics([TOPIC])
        narrow, everything = Inbox(), Inbox()
        await bus.subscribe(TOPIC, "narrow", narrow.handler, kinds={"paid"})
        await bus.subscribe(TOPIC, "everything", everything.handler)
        batch = _kinded_batch()
        await bus.publish_many(batch)
        await eventually(lambda: len(everything.messages) == len(batch), timeout=DELIVERY_TIMEOUT, what="all")
        await asyncio.sleep(0.3)
        assert sorted(m.value for m in narrow.messages) == sorted(
            m.value for m in batch if m.kind != "assigned"
        )
        retained = [m.value async for m in bus.read_retained(TOPIC)]
        assert sorted(retained) == sorted(m.value for m in batch)  # every kind is kept and read back
    finally:
        await buses.close_all()


async def test_on_nats_a_stream_from_before_kinds_takes_them_on(nats_url: str) -> None:
    """A data directory from an earlier version holds streams bound to the bare subject only."""
    from nats.js.api import StreamConfig

    buses = BusMaker("nats", nats_url)
    try:
        bus = await buses.started()
        assert isinstance(bus, NatsBus) and bus._js is not None
        await bus._js.add_stream(StreamConfig(name=bus.stream_name(TOPIC), subjects=[bus.subject(TOPIC)]))
        await bus.publish(TOPIC, "order-1", b"old")
        # A publisher meets the old stream first (no subject for the kind yet), then a consumer binds.
        assert await bus.publish_many([Outgoing(TOPIC, "order-1", b"new", kind="paid")]) == PublishResult(1)
        inbox = Inbox()
        await bus.subscribe(TOPIC, "upgraded", inbox.handler, kinds={"paid"})

        await eventually(lambda: len(inbox.messages) == 2, timeout=DELIVERY_TIMEOUT, what="both messages")
        assert [m.value for m in inbox.messages] == [b"old", b"new"]
    finally:
        await buses.close_all()


async def test_on_nats_a_group_from_the_pull_days_carries_on_where_it_was(nats_url: str) -> None:
    """A data directory from an earlier version holds the group as a pull consumer: the push consumer
    that replaces it starts after what the pull one had acknowledged, and the pull one goes."""
    from nats.js.api import AckPolicy, ConsumerConfig

    buses = BusMaker("nats", nats_url)
    try:
        bus = await buses.started()
        assert isinstance(bus, NatsBus) and bus._js is not None
        await bus.ensure_topics([TOPIC])
        stream = bus.stream_name(TOPIC)
        for n in range(5):
            await bus.publish(TOPIC, "order-1", f"v{n}".encode())
        await bus._js.add_consumer(
            stream, ConsumerConfig(durable_name="kitchen", ack_policy=AckPolicy.EXPLICIT)
        )
        old = await bus._js.pull_subscribe_bind(durable="kitchen", stream=stream)
        for msg in await old.fetch(3, timeout=5):
            await msg.ack()  # the old consumer handled v0..v2
        await old.unsubscribe()
        await asyncio.sleep(0.2)

        inbox = Inbox()
        await bus.subscribe(TOPIC, "kitchen", inbox.handler)
        await bus.publish(TOPIC, "order-1", b"v5")

        await eventually(lambda: len(inbox.messages) == 3, timeout=DELIVERY_TIMEOUT, what="v3, v4 and v5")
        await asyncio.sleep(0.3)
        assert inbox.values == [b"v3", b"v4", b"v5"]
        names = [info.name for info in await bus._js.consumers_info(stream)]
        assert "kitchen" not in names and "kitchen-push" in names
    finally:
        await buses.close_all()


async def test_a_batch_published_again_is_not_stored_twice_on_nats(nats_url: str) -> None:
    """NATS only: Kafka runs without broker-side de-duplication here (the consumers' inbox drops
    repeats there)."""
    buses = BusMaker("nats", nats_url)
    try:
        await _publish_a_batch_twice(await buses.started())
    finally:
        await buses.close_all()


async def _publish_a_batch_twice(bus: EventBus) -> None:
    await bus.ensure_topics([TOPIC])
    inbox = Inbox()
    await bus.subscribe(TOPIC, "dedup", inbox.handler)
    batch = [Outgoing(TOPIC, "order-1", f"v{seq}".encode(), message_id=f"dedup-{seq}") for seq in range(5)]

    assert await bus.publish_many(batch) == PublishResult(5)
    assert await bus.publish_many(batch[2:]) == PublishResult(3)  # acknowledged, as duplicates
    await bus.publish(TOPIC, "order-1", b"after")

    await eventually(lambda: len(inbox.messages) == 6, timeout=DELIVERY_TIMEOUT, what="6 messages")
    await asyncio.sleep(0.3)
    assert inbox.values == [b"v0", b"v1", b"v2", b"v3", b"v4", b"after"]


async def test_on_nats_a_waiting_key_does_not_hold_up_the_other_keys(nats_url: str) -> None:
    """NATS only (the Kafka adapter handles a partition in order, keys included). The handler of key
    `slow` waits until every other key's message was handled: handled one at a time, it never would."""
    buses = BusMaker("nats", nats_url)
    try:
        bus = await buses.started()
        await bus.ensure_topics([TOPIC])
        others_done = asyncio.Event()
        handled: list[str] = []

        async def handler(message: Message) -> None:
            if message.key == "slow":
                await asyncio.wait_for(others_done.wait(), DELIVERY_TIMEOUT)
            handled.append(message.key)
            if len([key for key in handled if key != "slow"]) == 10:
                others_done.set()

        await bus.publish(TOPIC, "slow", b"waits for the others")
        for n in range(10):
            await bus.publish(TOPIC, f"fast-{n}", b"quick")
        await bus.subscribe(TOPIC, "lanes", handler, max_attempts=1)

        await eventually(lambda: len(handled) == 11, timeout=DELIVERY_TIMEOUT, what="11 messages")
        assert handled[-1] == "slow"
    finally:
        await buses.close_all()


async def test_members_of_a_group_share_the_work(buses: BusMaker) -> None:
    # Two buses: two processes of the same service.
    first, second = await buses.started(), await buses.started()
    await first.ensure_topics([TOPIC])
    inbox_1, inbox_2 = Inbox(), Inbox()
    await first.subscribe(TOPIC, "workers", inbox_1.handler)
    await second.subscribe(TOPIC, "workers", inbox_2.handler)

    # Publish in rounds until both members have had work (a Kafka member joins after a rebalance).
    published: list[bytes] = []
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while not (inbox_1.messages and inbox_2.messages):
        assert time.monotonic() < deadline, "the work was never shared between the two members"
        for _ in range(10):
            value = f"m{len(published)}".encode()
            await first.publish(TOPIC, f"order-{len(published)}", value)
            published.append(value)
        await asyncio.sleep(0.2)
    for _ in range(40):
        value = f"m{len(published)}".encode()
        await first.publish(TOPIC, f"order-{len(published)}", value)
        published.append(value)

    def handled() -> list[bytes]:
        return inbox_1.values + inbox_2.values

    await eventually(lambda: len(set(handled())) == len(published), timeout=DELIVERY_TIMEOUT, what="all")
    await asyncio.sleep(0.5)  # let a duplicate show up, if one were coming
    assert set(handled()) == set(published)
    duplicates = [value for value, count in Counter(handled()).items() if count > 1]
    assert duplicates == [], "without failures every message is handled exactly once"
    assert inbox_1.messages and inbox_2.messages


async def test_a_member_joining_a_busy_group_takes_over_without_loss_or_repeats(
    buses: BusMaker, adapter: str
) -> None:
    # Scale-out while events flow: on Kafka the first member gives partitions away mid-stream (it must
    # finish the message in flight and commit before the second member starts from that offset).
    first, second = await buses.started(), await buses.started()
    await first.ensure_topics([TOPIC])
    inbox_1, inbox_2 = Inbox(), Inbox()
    handling_order: list[Message] = []  # across both members

    async def slow_1(message: Message) -> None:
        await asyncio.sleep(0.005)  # keeps a handler in flight when the rebalance comes
        handling_order.append(message)
        await inbox_1.handler(message)

    async def handler_2(message: Message) -> None:
        handling_order.append(message)
        await inbox_2.handler(message)

    await first.subscribe(TOPIC, "scale-out", slow_1)
    published: list[bytes] = []
    stop_publishing = asyncio.Event()

    async def publish_continuously() -> None:
        while not stop_publishing.is_set():
            value = f"m{len(published)}".encode()
            await first.publish(TOPIC, f"order-{len(published) % 16}", value)
            published.append(value)
            await asyncio.sleep(0.01)

    publisher = asyncio.create_task(publish_continuously())
    try:
        await eventually(
            lambda: len(inbox_1.messages) >= 20, timeout=DELIVERY_TIMEOUT, what="the first member"
        )
        await second.subscribe(TOPIC, "scale-out", handler_2)
        await eventually(lambda: len(inbox_2.messages) >= 20, timeout=DELIVERY_TIMEOUT, what="the newcomer")
    finally:
        stop_publishing.set()
        await asyncio.wait_for(publisher, 10)

    def handled() -> list[bytes]:
        return inbox_1.values + inbox_2.values

    await eventually(lambda: set(handled()) == set(published), timeout=DELIVERY_TIMEOUT, what="every message")
    await asyncio.sleep(0.5)
    duplicates = sorted(value for value, count in Counter(handled()).items() if count > 1)
    assert duplicates == [], "a rebalance without failures must not repeat messages"
    # Per-key order holds within each member's share...
    for inbox in (inbox_1, inbox_2):
        for key in {m.key for m in inbox.messages}:
            numbers = [int(m.value[1:]) for m in inbox.messages if m.key == key]
            assert numbers == sorted(numbers), f"{key} out of order: {numbers}"
    if adapter == "kafka":
        # ...and, on Kafka, across the hand-over too: a key's partition moves to the newcomer only
        # after the first member finished and committed its messages. (JetStream does not partition
        # a consumer by key; see the NatsBus docstring.)
        for key in {m.key for m in handling_order}:
            numbers = [int(m.value[1:]) for m in handling_order if m.key == key]
            assert numbers == sorted(numbers), f"{key} out of order across members: {numbers}"


async def test_every_group_gets_every_message(buses: BusMaker) -> None:
    bus = await buses.started()
    await bus.ensure_topics([TOPIC])
    notifications, read_model = Inbox(), Inbox()
    await bus.subscribe(TOPIC, "notifications", notifications.handler)
    await bus.subscribe(TOPIC, "order-info", read_model.handler)

    published = [f"event-{i}".encode() for i in range(20)]
    for i, value in enumerate(published):
        await bus.publish(TOPIC, f"order-{i % 4}", value)

    await eventually(
        lambda: len(notifications.messages) >= 20 and len(read_model.messages) >= 20,
        timeout=DELIVERY_TIMEOUT,
        what="both groups to get every message",
    )
    assert sorted(notifications.values) == sorted(published)
    assert sorted(read_model.values) == sorted(published)


async def test_unacknowledged_message_is_delivered_again(buses: BusMaker, adapter: str) -> None:
    # The first consumer takes the message and dies before acknowledging it: its bus is closed while
    # the handler hangs (the short grace makes close() cancel the handler, as a crash would).
    doomed = await buses.started(shutdown_grace_seconds=0.2)
    await doomed.ensure_topics([TOPIC])
    taken = asyncio.Event()

    async def hang(message: Message) -> None:
        taken.set()
        await asyncio.Event().wait()

    await doomed.subscribe(TOPIC, "billing", hang)
    await doomed.publish(TOPIC, "order-7", b"pay me")
    await asyncio.wait_for(taken.wait(), DELIVERY_TIMEOUT)
    await asyncio.wait_for(doomed.close(), 10)

    survivor = await buses.started()
    inbox = Inbox()
    await survivor.subscribe(TOPIC, "billing", inbox.handler)

    await eventually(lambda: len(inbox.messages) >= 1, timeout=DELIVERY_TIMEOUT, what="the redelivery")
    assert inbox.messages[0].key == "order-7"
    assert inbox.messages[0].value == b"pay me"
    if adapter == "nats":
        # JetStream counts deliveries; Kafka does not know about the first one.
        assert inbox.messages[0].delivery_attempt >= 2


async def test_poison_message_is_dead_lettered_and_its_key_moves_on(buses: BusMaker) -> None:
    bus = await buses.started()
    await bus.ensure_topics([TOPIC])
    handled: list[bytes] = []
    poison_attempts: list[int] = []

    async def handler(message: Message) -> None:
        if message.value == b"poison":
            poison_attempts.append(message.delivery_attempt)
            raise ValueError("boom: cannot parse")
        handled.append(message.value)

    parked = Inbox()
    await bus.subscribe(dead_letter_topic(TOPIC), "dlq-reader", parked.handler)
    await bus.subscribe(TOPIC, "kitchen", handler, max_attempts=3, retry_backoff_seconds=0.05)
    for value in (b"before", b"poison", b"after"):
        await bus.publish(TOPIC, "order-9", value, {"trace": "abc"})

    await eventually(
        lambda: b"after" in handled, timeout=DELIVERY_TIMEOUT, what="the message behind the poison"
    )
    assert handled == [b"before", b"after"]
    assert poison_attempts == [1, 2, 3]

    await eventually(lambda: len(parked.messages) == 1, timeout=DELIVERY_TIMEOUT, what="the dead letter")
    (dead,) = parked.messages
    assert dead.topic == dead_letter_topic(TOPIC)
    assert dead.key == "order-9"
    assert dead.value == b"poison"
    assert dead.headers["trace"] == "abc"
    assert dead.headers[DLQ_HEADER_ORIGINAL_TOPIC] == TOPIC
    assert dead.headers[DLQ_HEADER_GROUP] == "kitchen"
    assert dead.headers[DLQ_HEADER_ATTEMPTS] == "3"
    assert "boom: cannot parse" in dead.headers[DLQ_HEADER_ERROR]
    await asyncio.sleep(0.5)
    assert poison_attempts == [1, 2, 3], "a parked message is acknowledged, not retried again"


async def test_a_bus_started_while_the_broker_is_down_connects_when_it_comes_up(
    own_broker: EmbeddedNats | EmbeddedApacheKafka, buses: BusMaker
) -> None:
    # A service (and its outbox relay) must start while the broker is away.
    address = own_broker.url if isinstance(own_broker, EmbeddedNats) else own_broker.bootstrap_servers
    own_broker.stop()
    extra = {"start_timeout_seconds": 1.0} if isinstance(own_broker, EmbeddedNats) else {}
    bus = await asyncio.wait_for(buses.started(address=address, **extra), 10)
    inbox = Inbox()
    await bus.subscribe(TOPIC, "early-bird", inbox.handler)
    with pytest.raises(BusUnavailable):
        await bus.publish(TOPIC, "order-1", b"too early")
    assert not await bus.healthy()

    own_broker.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            await bus.publish(TOPIC, "order-1", b"on time")
            break
        except BusUnavailable:
            assert time.monotonic() < deadline, "the bus never connected after the broker came up"
            await asyncio.sleep(0.2)
    await eventually(lambda: inbox.values == [b"on time"], timeout=DELIVERY_TIMEOUT, what="the subscriber")


async def test_publish_fails_fast_while_broker_is_down_and_all_works_when_it_is_back(
    own_broker: EmbeddedNats | EmbeddedApacheKafka, buses: BusMaker, adapter: str
) -> None:
    # own_broker comes first so that it is torn down last, after the buses have closed.
    address = own_broker.url if isinstance(own_broker, EmbeddedNats) else own_broker.bootstrap_servers
    bus = await buses.started(address=address)
    await bus.ensure_topics([TOPIC])
    through = Inbox()
    await bus.subscribe(TOPIC, "through-outage", through.handler)
    await bus.publish(TOPIC, "order-1", b"before the outage")
    await eventually(lambda: len(through.messages) == 1, timeout=DELIVERY_TIMEOUT, what="the first message")

    own_broker.stop()
    started = time.monotonic()
    with pytest.raises(BusUnavailable):
        await bus.publish(TOPIC, "order-1", b"during the outage")
    assert time.monotonic() - started < 6, "a dead broker must fail the publish within seconds"
    started = time.monotonic()
    refused = await bus.publish_many([Outgoing(TOPIC, "order-1", b"batch during the outage")])
    assert refused.acknowledged == 0 and isinstance(refused.error, BusUnavailable)
    assert time.monotonic() - started < 20, "a dead broker must fail a batch within seconds"
    assert not await bus.healthy()

    own_broker.start()  # same port (and, for NATS, same data directory)
    deadline = time.monotonic() + 30
    while True:
        try:
            await bus.publish(TOPIC, "order-1", b"after the outage")
            break
        except BusUnavailable:
            assert time.monotonic() < deadline, "publishing never recovered after the broker came back"
            await asyncio.sleep(0.2)
    assert await bus.healthy()

    late = Inbox()
    await bus.subscribe(TOPIC, "after-outage", late.handler)

    # The subscription made before the outage carries on by itself, without repeating what it had
    # acknowledged, and the publish reported as failed was not sent behind the caller's back.
    await eventually(lambda: len(through.messages) == 2, timeout=DELIVERY_TIMEOUT, what="the subscriber")
    # Both brokers store on disk: a new group still finds the message from before the outage.
    expected = [b"before the outage", b"after the outage"]
    await eventually(
        lambda: len(late.messages) >= len(expected), timeout=DELIVERY_TIMEOUT, what="a new group"
    )
    await asyncio.sleep(0.5)
    assert through.values == [b"before the outage", b"after the outage"]
    assert late.values == expected


async def test_read_retained_yields_every_message_from_the_oldest_then_stops(buses: BusMaker) -> None:
    # What `sandwich replay` rebuilds a read model from: the whole topic, outside of any group.
    bus = await buses.started()
    assert [m async for m in bus.read_retained("never.created")] == []
    await bus.ensure_topics([TOPIC])
    assert [m async for m in bus.read_retained(TOPIC)] == []
    keys = ["order-a", "order-b", "order-c", "order-d"]
    published = []
    for seq in range(25):
        for key in keys:
            value = f"{key}:{seq}".encode()
            await bus.publish(TOPIC, key, value, {"event-type": "OrderEvent"})
            published.append(value)
    # A burst the producer may pack into few record batches (a broker once miscounted those).
    burst = [f"burst-{i}:0".encode() for i in range(200)]
    await asyncio.gather(*(bus.publish(TOPIC, value.decode()[:-2], value) for value in burst))
    published += burst

    retained = [m async for m in bus.read_retained(TOPIC)]

    assert sorted(m.value for m in retained) == sorted(published), "each message exactly once"
    for key in keys:
        sequence = [int(m.value.decode().split(":")[1]) for m in retained if m.key == key]
        assert sequence == list(range(25)), f"{key} read out of order: {sequence}"
    assert all(m.topic == TOPIC and m.key == m.value.decode().split(":")[0] for m in retained)
    assert all(m.headers == {"event-type": "OrderEvent"} for m in retained if m.value not in burst)
    # Reading moves no position: a second read gives the same (keys may interleave differently on
    # Kafka, whose partitions are read side by side), and a group still gets everything.
    again = [m async for m in bus.read_retained(TOPIC)]
    for key in keys:
        assert [m.value for m in again if m.key == key] == [m.value for m in retained if m.key == key]
    assert len(again) == len(retained)
    inbox = Inbox()
    await bus.subscribe(TOPIC, "after-the-read", inbox.handler)
    await eventually(lambda: len(inbox.messages) == len(published), timeout=DELIVERY_TIMEOUT, what="all")


def test_make_bus_picks_the_adapter_from_the_settings() -> None:
    kafka = make_bus(
        Settings(kafka_bootstrap_servers="127.0.0.1:9", nats_url="nats://127.0.0.1:9", topic_prefix="x."),
        client_name="orders",
    )
    assert isinstance(kafka, KafkaBus)
    assert (kafka.client_name, kafka.topic_name("order.events")) == ("orders", "x.order.events")
    nats = make_bus(Settings(kafka_bootstrap_servers="", nats_url="nats://127.0.0.1:9"), client_name="orders")
    assert isinstance(nats, NatsBus)
    assert nats.subject("order.events") == "order.events"
    with pytest.raises(BusNotConfigured):
        make_bus(Settings(kafka_bootstrap_servers="", nats_url=""), client_name="orders")
