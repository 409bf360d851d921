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
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar, cast

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


Engine = TypeVar("Engine", bound=_Stoppable)


def _shared(name: str, start: Callable[[Path], Engine]) -> Engine:
    """The session's `name` engine, started (in a folder of its own) on first use."""
    with _lock:
        if name not in _started:
            _started[name] = start(_engine_dir(name))
        return cast(Engine, _started[name])


def _postgres(folder: Path) -> EmbeddedPostgres:
    pg = EmbeddedPostgres(folder)
    pg.start()
    return pg


def _nats(folder: Path) -> EmbeddedNats:
    nats = EmbeddedNats()
    nats.start(folder)
    return nats


def _kafka(folder: Path) -> EmbeddedApacheKafka:
    kafka = EmbeddedApacheKafka()
    kafka.start(folder)
    return kafka


def postgres_url() -> str:
    """A PostgreSQL server's maintenance database URL: $DATABASE_URL, else the embedded one."""
    return os.environ.get("DATABASE_URL") or _shared("postgres", _postgres).url


def nats_url() -> str:
    """A NATS JetStream server: $NATS_URL, else the embedded one."""
    return os.environ.get("NATS_URL") or _shared("nats", _nats).url


def kafka_bootstrap() -> str:
    """An Apache Kafka broker: $KAFKA_BOOTSTRAP_SERVERS, else the embedded one (Java 17+, Maven)."""
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or _shared("kafka", _kafka).bootstrap_servers


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
