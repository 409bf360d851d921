"""The embedded Apache Kafka: a real KRaft broker that the bus adapter uses, and that keeps its data.

The jars come from Maven Central on first use, once per machine (the session fixture fetches them
into the same cache `sandwich up` uses, so a second run downloads nothing). Without Java 17+ or
Maven the broker tests are skipped with the reason; the tests of the error messages and of the
download cache run anyway (they fake `java` and `mvn`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandwich.platform.bus.kafka import KafkaBus
from sandwich.platform.embedded.apache_kafka import (
    EmbeddedApacheKafka,
    checked_java,
    ensure_kafka_jars,
    kafka_version,
    metadata_broker_count,
)
from sandwich.platform.embedded.brokers import EmbeddedBrokerError
from tests.integration.bus.conftest import Inbox, eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

TOPIC = "order.events"
DELIVERY_TIMEOUT = 30.0


@pytest.fixture(scope="session")
def kafka_jars() -> Path:
    """Kafka's jars, fetched once per machine (skips when Java 17+ or Maven is missing)."""
    try:
        checked_java()
    except EmbeddedBrokerError as exc:
        pytest.skip(str(exc))
    try:
        return ensure_kafka_jars()
    except EmbeddedBrokerError as exc:
        if shutil.which("mvn") is None:
            pytest.skip(str(exc))
        raise


@pytest.fixture
def kafka(kafka_jars: Path, tmp_path: Path) -> Iterator[EmbeddedApacheKafka]:
    broker = EmbeddedApacheKafka(cache_dir=kafka_jars.parent)
    broker.start(tmp_path)
    try:
        yield broker
    finally:
        broker.stop()


def _bus(kafka: EmbeddedApacheKafka, prefix: str, **options: Any) -> KafkaBus:
    return KafkaBus(
        kafka.bootstrap_servers,
        client_name="test-apache-kafka",
        topic_prefix=prefix,
        publish_timeout_seconds=5.0,
        shutdown_grace_seconds=5.0,
        **options,
    )


def test_it_is_a_kraft_broker_on_ports_of_its_own(kafka: EmbeddedApacheKafka, tmp_path: Path) -> None:
    host, port = kafka.bootstrap_servers.split(":")
    assert host == "127.0.0.1"
    assert int(port) == kafka.port != kafka.controller_port
    assert kafka.running and kafka.pid is not None
    assert metadata_broker_count(host, kafka.port) == 1
    properties = (tmp_path / "kafka" / "server.properties").read_text()
    assert "process.roles=broker,controller" in properties
    assert f"log.dirs={tmp_path / 'kafka' / 'logs'}" in properties
    assert "num.partitions=6" in properties
    meta = (tmp_path / "kafka" / "logs" / "meta.properties").read_text()
    cluster_id = (tmp_path / "kafka" / "cluster.id").read_text().strip()
    assert f"cluster.id={cluster_id}" in meta
    log = (tmp_path / "apache-kafka.log").read_text()
    assert "Kafka Server started" in log
    assert f"Kafka version: {kafka_version()}" in log

    pid, ports = kafka.pid, (kafka.port, kafka.controller_port)
    kafka.restart(down_seconds=0.5)
    assert kafka.pid != pid
    assert (kafka.port, kafka.controller_port) == ports
    assert (tmp_path / "kafka" / "logs" / "meta.properties").read_text() == meta, "formatted again"
    assert metadata_broker_count(host, kafka.port) == 1


async def test_a_group_consumes_and_its_offsets_and_messages_survive_a_restart(
    kafka: EmbeddedApacheKafka,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}."
    first = _bus(kafka, prefix)
    await first.start()
    await first.ensure_topics([TOPIC])
    inbox = Inbox()
    await first.subscribe(TOPIC, "billing", inbox.handler)
    for n in range(6):
        await first.publish(TOPIC, f"order-{n % 3}", f"before:{n}".encode())
    await eventually(lambda: len(inbox.messages) == 6, timeout=DELIVERY_TIMEOUT, what="6 messages")
    assert sorted(inbox.values) == [f"before:{n}".encode() for n in range(6)]
    await first.close()  # commits the group's offsets

    kafka.restart(down_seconds=0.5)

    second = _bus(kafka, prefix)
    await second.start()
    for n in range(3):
        await second.publish(TOPIC, f"order-{n}", f"after:{n}".encode())
    again = Inbox()
    await second.subscribe(TOPIC, "billing", again.handler)
    everything = Inbox()
    await second.subscribe(TOPIC, "audit", everything.handler)  # a new group reads from the start
    try:
        await eventually(lambda: len(again.messages) >= 3, timeout=DELIVERY_TIMEOUT, what="3 new messages")
        await eventually(lambda: len(everything.messages) >= 9, timeout=DELIVERY_TIMEOUT, what="9 messages")
        await asyncio.sleep(1.0)  # anything the group had committed would come back by now
        assert sorted(again.values) == [f"after:{n}".encode() for n in range(3)], "offsets were lost"
        assert len(everything.messages) == 9
        assert {m.value for m in everything.messages} >= {f"before:{n}".encode() for n in range(6)}
    finally:
        await second.close()


async def test_a_killed_broker_keeps_what_it_acknowledged(kafka: EmbeddedApacheKafka) -> None:
    """SIGKILL skips the controlled shutdown: Kafka recovers its logs; acknowledged means kept."""
    prefix = f"t{uuid.uuid4().hex[:12]}."
    # Kafka serves the idempotent producer (InitProducerId).
    bus = _bus(kafka, prefix, enable_idempotence=True)
    await bus.start()
    for n in range(20):
        await bus.publish(TOPIC, f"order-{n % 4}", f"kept:{n}".encode())
    await bus.close()

    kafka.kill()
    assert not kafka.running
    kafka.start()

    reader = _bus(kafka, prefix)
    await reader.start()
    inbox = Inbox()
    await reader.subscribe(TOPIC, "audit", inbox.handler)  # a new group reads from the start
    try:
        await eventually(lambda: len(inbox.messages) >= 20, timeout=DELIVERY_TIMEOUT, what="20 messages")
        assert sorted(inbox.values) == sorted(f"kept:{n}".encode() for n in range(20))
        for key in {m.key for m in inbox.messages}:  # and each key's order
            of_key = [int(m.value.decode().split(":")[1]) for m in inbox.messages if m.key == key]
            assert of_key == sorted(of_key)
    finally:
        await reader.close()


# -- without Java or Maven: clear errors, no broker needed ---------------------------------------------


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def test_a_wrong_java_home_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(EmbeddedBrokerError, match=r"JAVA_HOME=.*no-jdk has no bin/java"):
        EmbeddedApacheKafka().start(tmp_path / "data")


def test_no_java_at_all_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(EmbeddedBrokerError, match=r"java not found: Apache Kafka needs Java 17") as caught:
        EmbeddedApacheKafka().start(tmp_path / "data")
    assert "apt-get install openjdk-17" in str(caught.value)


def test_an_old_java_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jdk = tmp_path / "jdk11"
    _script(jdk / "bin" / "java", "echo 'openjdk version \"11.0.22\" 2024-01-16' >&2\n")
    monkeypatch.setenv("JAVA_HOME", str(jdk))
    with pytest.raises(EmbeddedBrokerError, match=r"needs Java 17 or newer, but .*java is Java 11"):
        EmbeddedApacheKafka().start(tmp_path / "data")


def test_no_maven_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _script(tmp_path / "jdk" / "bin" / "java", "echo 'openjdk version \"17.0.15\" 2025-04-15' >&2\n")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("SANDWICH_KAFKA_CACHE", str(tmp_path / "cache"))
    with pytest.raises(EmbeddedBrokerError, match=r"mvn not found: .*apt-get install maven"):
        EmbeddedApacheKafka().start(tmp_path / "data")


def test_the_jars_are_fetched_once_and_a_cut_download_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fake mvn counts its runs: concurrent starters share one download; a missing stamp redoes it."""
    runs = tmp_path / "runs"
    _script(
        tmp_path / "bin" / "mvn",
        f'echo run >> "{runs}"\nsleep 0.5\n'
        'for arg in "$@"; do case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}";; esac; done\n'
        'mkdir -p "$out" && touch "$out/kafka_2.13-0.jar"\n',
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    cache = tmp_path / "cache"

    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(ensure_kafka_jars(cache))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [cache / "lib"] * 3
    assert runs.read_text().count("run") == 1
    assert (cache / "pom.xml").is_file()

    ensure_kafka_jars(cache)
    assert runs.read_text().count("run") == 1, "a complete cache is used as it is"

    (cache / "complete.sha256").unlink()  # as if the download had been cut short
    ensure_kafka_jars(cache)
    assert runs.read_text().count("run") == 2
