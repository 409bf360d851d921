"""Session-wide engines for every test that needs one (see tests/engines.py): a test asks for
`postgres_url`, `nats_url` or `kafka_bootstrap` and gets the configured server or the embedded one,
started once and shared."""

from __future__ import annotations

import pytest

from tests import engines


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
