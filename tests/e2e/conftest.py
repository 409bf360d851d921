"""The running platform for end-to-end tests: every service as its own process, real PostgreSQL,
real NATS JetStream, real SMTP sink, driven over HTTP through the gateway only.

By default the embedded engines are used (the same path as `sandwich up`); with DATABASE_URL set the
databases go to that server under a unique prefix. The broker is always the embedded one because the
fault tests stop and start it.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from sandwich.cli.supervisor import Platform
from tests.e2e.client import Api

ADMIN_USERNAME = "root-admin"
ADMIN_PASSWORD = secrets.token_urlsafe(12)


FLOWS = [flow for flow in os.environ.get("SANDWICH_E2E_FLOWS", "hybrid,sync,async").split(",") if flow]


@pytest.fixture(scope="session", params=FLOWS)
def platform(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The whole platform in one interaction style; the suite runs once per flow (SANDWICH_E2E_FLOWS)."""
    data_dir: Path = tmp_path_factory.mktemp(f"platform-{request.param}")
    run_id = uuid.uuid4().hex[:8]
    env = {
        "SANDWICH_ADMIN_USERNAME": ADMIN_USERNAME,
        "SANDWICH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "SANDWICH_DB_PREFIX": f"e2e_{run_id}",
        "SANDWICH_TOPIC_PREFIX": f"e2e{run_id}.",
        "SANDWICH_PAYMENT_RETRY_AFTER": "2",
        "SANDWICH_LOGIN_RATE": "100000",
        "NATS_URL": "",
        "KAFKA_BOOTSTRAP_SERVERS": "",
    }
    if not os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = ""
    running = Platform(data_dir, flow=request.param, env_overrides=env)
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
