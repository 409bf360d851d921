"""The running platform for end-to-end tests: every service as its own process, real PostgreSQL,
real NATS JetStream, real SMTP sink, driven over HTTP through the gateway only.

By default the embedded engines are used (the same path as `sandwich up`); with DATABASE_URL set the
databases go to that server under a unique prefix. The broker is always an embedded one because the
fault tests stop and start it: NATS JetStream for every flow, and Apache Kafka for the flows that use
a broker (SANDWICH_E2E_FLOWS, SANDWICH_E2E_KAFKA_FLOWS; an empty value runs none).
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from sandwich.platform.settings import Broker
from sandwich.supervisor import Platform
from tests.e2e.client import Api
from tests.otlp_receiver import OtlpReceiver

ADMIN_USERNAME = "root-admin"
ADMIN_PASSWORD = secrets.token_urlsafe(12)


def _names(variable: str, default: str) -> list[str]:
    return [name.strip() for name in os.environ.get(variable, default).split(",") if name.strip()]


# Every flow on NATS (the embedded default), and the broker flows again on Apache Kafka, the seeds'
# broker (sync has no broker, so a Kafka run of it would repeat its NATS run).
RUNS = [
    *((flow, Broker.NATS) for flow in _names("SANDWICH_E2E_FLOWS", "hybrid,sync,async")),
    *((flow, Broker.KAFKA) for flow in _names("SANDWICH_E2E_KAFKA_FLOWS", "hybrid,async") if flow != "sync"),
]


def run_id(run: tuple[str, Broker]) -> str:
    flow, broker = run
    return flow if broker is Broker.NATS else f"{flow}-kafka"


@pytest.fixture(scope="session")
def trace_receiver() -> Iterator[OtlpReceiver]:
    """Where every platform of the suite exports its spans (OTLP over HTTP)."""
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


def tracing_env(receiver: OtlpReceiver) -> dict[str, str]:
    """Tracing on, by the standard variables, for the traces a test asks for only: a root is
    sampled never (ratio 0), and the services follow a caller's decision (parent-based), so a test
    that sends a sampled `traceparent` gets its whole trace and the rest of the suite records
    nothing."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }


@pytest.fixture(scope="session", params=RUNS, ids=run_id)
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, trace_receiver: OtlpReceiver
) -> Iterator[Platform]:
    """The whole platform in one interaction style on one broker; the suite runs once per run."""
    flow, broker = request.param
    data_dir: Path = tmp_path_factory.mktemp(f"platform-{run_id(request.param)}")
    run_id_ = uuid.uuid4().hex[:8]
    env = {
        "SANDWICH_ADMIN_USERNAME": ADMIN_USERNAME,
        "SANDWICH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "SANDWICH_DB_PREFIX": f"e2e_{run_id_}",
        "SANDWICH_TOPIC_PREFIX": f"e2e{run_id_}.",
        "SANDWICH_PAYMENT_RETRY_AFTER": "2",
        "SANDWICH_LOGIN_RATE": "100000",
        "SANDWICH_LOGIN_FAILURES": "100000",
        "SANDWICH_LOGIN_ACCOUNT_FAILURES": "100000",
        "SANDWICH_REGISTER_RATE": "100000",
        "NATS_URL": "",
        "KAFKA_BOOTSTRAP_SERVERS": "",
        **tracing_env(trace_receiver),
    }
    if not os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = ""
    # Kafka's first start fetches its jars (once per machine) and the JVM starts slower.
    ready_timeout = 300.0 if broker is Broker.KAFKA else 60.0
    running = Platform(data_dir, flow=flow, env_overrides=env, broker=broker, ready_timeout=ready_timeout)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def api(platform: Platform) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30.0) as client:
        yield Api(client, flow=platform.flow.value)


@pytest.fixture
async def admin(api: Api) -> Api:
    await api.wait_for_login(ADMIN_USERNAME, ADMIN_PASSWORD)
    return api.as_user(await api.login(ADMIN_USERNAME, ADMIN_PASSWORD))


@pytest.fixture
async def sandwich_item(admin: Api) -> dict[str, object]:
    """A menu item of its own for a test (priced 350.00 roubles), made of ingredients no food point
    stocks: its orders stay `paid`, whatever food points other tests created."""
    tag = uuid.uuid4().hex[:8]
    answer = await admin.post(
        "/api/v1/admin/menu",
        json={
            "name": f"Club {tag}",
            "price": 35000,
            "ingredients": [
                {"name": f"bread-{tag}", "quantity": 2},
                {"name": f"chicken-{tag}", "quantity": 1},
            ],
        },
    )
    assert answer.status_code == 201, answer.text
    item: dict[str, object] = answer.json()
    return item
