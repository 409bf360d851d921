"""Session-wide engines for every test that needs one (see tests/engines.py): a test asks for
`postgres_url`, `nats_url` or `kafka_bootstrap` and gets the configured server or the embedded one,
started once and shared."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandwich.platform.sealing import ensure_sealing_key, service_sealing_keys
from sandwich.platform.service_auth import ensure_service_keys
from sandwich.platform.settings import SERVICES
from tests import engines


@pytest.fixture(scope="session", autouse=True)
def service_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every service's key pair (and auth's sealing key), for the services tests build in-process (tests/credentials.py);
    the platforms the e2e tests start make their own under their data directory."""
    folder = tmp_path_factory.mktemp("secrets")
    ensure_service_keys(folder, SERVICES)
    for sealing_key in service_sealing_keys(folder):
        ensure_sealing_key(sealing_key)
    previous = os.environ.get("SANDWICH_SECRETS_DIR")
    os.environ["SANDWICH_SECRETS_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("SANDWICH_SECRETS_DIR", None)
    else:
        os.environ["SANDWICH_SECRETS_DIR"] = previous


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return engines.postgres_url()


@pytest.fixture(scope="session")
def nats_url() -> str:
    return engines.nats_url()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return engines.kafka_bootstrap()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    engines.stop_all()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int) -> None:
    """The end-to-end results per broker, so a run shows what its Kafka runs did (test ids of the
    platform's Kafka runs end in `-kafka`: tests/e2e/conftest.py)."""
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = str(getattr(report, "nodeid", ""))
            if not nodeid.startswith("tests/e2e/") or "[" not in nodeid:
                continue
            if outcome == "passed" and getattr(report, "when", "call") != "call":
                continue
            broker = "Apache Kafka" if "kafka" in nodeid.rpartition("[")[2] else "NATS or none (sync)"
            counts.setdefault(broker, dict.fromkeys(("passed", "failed", "error", "skipped"), 0))
            counts[broker][outcome] += 1
    for broker, tally in sorted(counts.items()):
        terminalreporter.write_line(
            f"end-to-end on {broker}: {tally['passed']} passed, {tally['failed']} failed, "
            f"{tally['error']} errors, {tally['skipped']} skipped"
        )
