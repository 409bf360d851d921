"""The engines the tests run against: the servers named by the environment, else embedded ones.

A fresh machine runs no PostgreSQL, NATS or Kafka, so no test may assume a server on a standard
port. Each engine is found the same way:

- `DATABASE_URL`, `NATS_URL`, `KAFKA_BOOTSTRAP_SERVERS` (an empty value counts as unset): that
  server is used as it is;
- otherwise the embedded engine is started on first use, once per test session, on free ports, in a
  temporary folder of its own, and every test that asks shares it. `tests/conftest.py` stops them
  when the session ends (and they die with the test process if it is killed).

Tests ask through the session fixtures of `tests/conftest.py`; code that runs outside a fixture
(a module's helper, a scratch database) calls the functions here directly.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Protocol

from sandwich.platform.embedded.apache_kafka import EmbeddedApacheKafka
from sandwich.platform.embedded.brokers import EmbeddedNats
from sandwich.platform.embedded.postgres import EmbeddedPostgres


class _Stoppable(Protocol):
    def stop(self) -> None: ...


_lock = threading.Lock()
_started: dict[str, _Stoppable] = {}
_folder: Path | None = None


def _engine_dir(name: str) -> Path:
    global _folder
    if _folder is None:
        _folder = Path(tempfile.mkdtemp(prefix="sandwich-test-engines-"))
    path = _folder / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def postgres_url() -> str:
    """A PostgreSQL server's maintenance database URL: $DATABASE_URL, else the embedded one."""
    external = os.environ.get("DATABASE_URL")
    if external:
        return external
    with _lock:
        pg = _started.get("postgres")
        if not isinstance(pg, EmbeddedPostgres):
            pg = EmbeddedPostgres(_engine_dir("postgres"))
            pg.start()
            _started["postgres"] = pg
        return pg.url


def nats_url() -> str:
    """A NATS JetStream server: $NATS_URL, else the embedded one."""
    external = os.environ.get("NATS_URL")
    if external:
        return external
    with _lock:
        nats = _started.get("nats")
        if not isinstance(nats, EmbeddedNats):
            nats = EmbeddedNats()
            nats.start(_engine_dir("nats"))
            _started["nats"] = nats
        return nats.url


def kafka_bootstrap() -> str:
    """An Apache Kafka broker: $KAFKA_BOOTSTRAP_SERVERS, else the embedded one (Java 17+, Maven)."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        return external
    with _lock:
        kafka = _started.get("kafka")
        if not isinstance(kafka, EmbeddedApacheKafka):
            kafka = EmbeddedApacheKafka()
            kafka.start(_engine_dir("kafka"))
            _started["kafka"] = kafka
        return kafka.bootstrap_servers


def stop_all() -> None:
    """Stop every engine this session started and remove their folder."""
    global _folder
    with _lock:
        for engine in reversed(list(_started.values())):
            engine.stop()
        _started.clear()
        if _folder is not None:
            shutil.rmtree(_folder, ignore_errors=True)
            _folder = None
