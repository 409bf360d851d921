"""The brokers' permissions per service, as made from platform/trust.py's table: what each service
may publish and read, and that nobody but the admin may destroy a topic."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandwich.platform.embedded import kafka_access, nats_access
from sandwich.platform.trust import BUS_CONSUMES, BUS_PUBLISHES, bus_users

pytestmark = pytest.mark.unit

PREFIX = "t1."


def _nats_publish(service: str) -> list[str]:
    allowed: list[str] = nats_access.permissions(service, PREFIX)["publish"]["allow"]
    return allowed


def test_on_nats_a_service_publishes_its_own_topics_and_the_dead_letters_of_what_it_reads() -> None:
    orders = _nats_publish("orders")
    assert {"t1.order.events", "t1.order.events.kind.*", "t1.orders.create.dlq"} <= set(orders)
    kitchen = _nats_publish("kitchen")
    assert "t1.order.events.dlq" in kitchen
    assert not [s for s in kitchen if s.startswith("t1.order.events") and not s.endswith(".dlq")]
    assert not [s for s in kitchen if s.startswith("t1.orders.create")]


def test_on_nats_nobody_but_the_admin_may_delete_or_purge_a_stream_or_listen_widely() -> None:
    for service in bus_users():
        allowed = nats_access.permissions(service, PREFIX)
        publish, subscribe = allowed["publish"]["allow"], allowed["subscribe"]["allow"]
        assert not [s for s in publish if ".DELETE." in s and ".CONSUMER." not in s], service
        assert not [
            s for s in publish if "PURGE" in s or s in {">", "$JS.>", "$JS.API.>", "$JS.API.STREAM.>"}
        ], service
        assert not [s for s in subscribe if s in {">", "_INBOX.>", "_SANDWICH.deliver.>"}], service
        assert f"_INBOX.{service}.>" in subscribe


def test_on_nats_the_users_are_the_admin_and_every_service_that_uses_the_broker(tmp_path: Path) -> None:
    block = nats_access.authorization(tmp_path, PREFIX)
    names = [user["user"] for user in block["users"]]
    assert names == [nats_access.ADMIN_USER, *bus_users()]
    assert "permissions" not in block["users"][0], "the admin is not limited"
    passwords = {user["password"] for user in block["users"]}
    assert len(passwords) == len(names), "every user has a password of its own"
    again = nats_access.authorization(tmp_path, PREFIX)
    assert [u["password"] for u in again["users"]] == [u["password"] for u in block["users"]]


def test_on_kafka_a_service_writes_only_its_own_topics_and_reads_only_what_it_consumes() -> None:
    for service in bus_users():
        granted = kafka_access.bindings(service, PREFIX)
        written = {
            name for _, kind, name, op in granted if kind == kafka_access.TOPIC and op == kafka_access.WRITE
        }
        read = {
            name for _, kind, name, op in granted if kind == kafka_access.TOPIC and op == kafka_access.READ
        }
        owned = {f"{PREFIX}{t}" for t in BUS_PUBLISHES.get(service, ())}
        consumed = {f"{PREFIX}{t}" for t, _ in BUS_CONSUMES.get(service, ())}
        assert written == owned | {f"{t}.dlq" for t in consumed}, service
        assert read == consumed, service
        groups = {name for _, kind, name, _ in granted if kind == kafka_access.GROUP}
        assert groups == {f"{PREFIX}{g}" for _, g in BUS_CONSUMES.get(service, ())}, service
        assert {user for user, *_ in granted} == {service}


def test_on_kafka_no_service_may_delete_or_alter() -> None:
    for service in bus_users():
        operations = {op for *_, op in kafka_access.bindings(service, PREFIX)}
        assert operations <= {
            kafka_access.READ,
            kafka_access.WRITE,
            kafka_access.CREATE,
            kafka_access.DESCRIBE,
        }
