"""Every service answers health and metrics; the gateway's OpenAPI document is the public contract."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from sandwich.platform.service_auth import CALLER_HEADER, ServiceKeys
from sandwich.platform.settings import SERVICES
from sandwich.platform.trust import PUBLIC_FRONTS
from sandwich.supervisor import Platform
from tests.e2e.client import Api

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("service", SERVICES)
async def test_health_and_metrics(platform: Platform, service: str) -> None:
    async with httpx.AsyncClient(base_url=platform.service_url(service), timeout=10) as client:
        live = await client.get("/health/live")
        assert live.status_code == 200 and live.json()["status"] == "live"
        ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200 and "http_requests_total" in metrics.text


async def test_gateway_openapi_describes_the_public_contract(api: Api) -> None:
    document = (await api.get("/openapi.json")).json()
    paths = document["paths"]
    for path in (
        "/api/v1/auth/register",
        "/api/v1/order",
        "/api/v1/orders/{order_id}",
        "/api/v1/billing/account",
    ):
        assert path in paths, path
    assert not [p for p in paths if p.startswith(("/internal", "/billing/account/operate"))]
    assert paths["/api/v1/order"]["post"]["security"] == [{"bearer": []}]
    assert paths["/api/v1/pages/orders"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in paths["/api/v1/auth/login"]["post"]


@pytest.mark.parametrize("service", [s for s in SERVICES if s not in PUBLIC_FRONTS])
async def test_each_service_has_its_openapi_document(platform: Platform, service: str) -> None:
    as_gateway = {CALLER_HEADER: ServiceKeys.load(platform.secrets_dir, "gateway").caller_token(service)}
    async with httpx.AsyncClient(base_url=platform.service_url(service), timeout=10) as client:
        document = (await client.get("/openapi.json", headers=as_gateway)).json()
    assert document["info"]["title"] == f"sandwich {service}" and document["paths"]


def test_work_that_follows_an_order_runs_at_a_lower_cpu_priority(platform: Platform) -> None:
    """Fulfilment and the mail sink yield the CPU to the request path and the consumers a customer
    watches (sandwich/supervisor BACKGROUND), in every thread they start."""
    import psutil

    from sandwich.supervisor import BACKGROUND, DEFAULT_BACKGROUND_NICE

    for name in (*SERVICES, "mailsink"):
        pid = platform.service_pid(name)
        assert pid is not None, name
        threads = [psutil.Process(t.id).nice() for t in psutil.Process(pid).threads()]
        wanted = DEFAULT_BACKGROUND_NICE if name in BACKGROUND else 0
        assert set(threads) == {wanted}, (name, threads)


async def test_the_system_overview_is_the_admins_and_sees_every_service(
    api: Api, admin: Api, platform: Platform
) -> None:
    """GET /api/v1/admin/system: every service live and ready, the flow and broker in use, orders per
    status from orders' own gauge; a customer is refused."""
    customer = await api.new_customer()
    refused = await customer.get("/api/v1/admin/system")
    assert refused.status_code == 403, refused.text
    deadline = time.monotonic() + 15  # orders counts its orders every 5 s
    while True:
        answer = await admin.get("/api/v1/admin/system")
        assert answer.status_code == 200, answer.text
        overview = answer.json()
        if overview["orders_by_status"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert overview["flow"] == platform.flow.value
    assert overview["broker"] == ("none" if platform.flow.value == "sync" else platform.broker_kind.value)
    rows = {row["service"]: row for row in overview["services"]}
    assert set(rows) == set(platform.services)
    assert all(row["live"] and row["ready"] for row in rows.values()), rows
    assert rows["gateway"]["requests"] > 0
    assert set(overview["orders_by_status"]) >= {"created", "paid", "completed", "cancelled"}
