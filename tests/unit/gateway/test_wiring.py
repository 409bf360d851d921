"""The gateway's wiring: what app.py puts in its typed context in each flow (the order intake only in
async, the flow and broker as the System page names them), and the public OpenAPI document kept in
the context only once every service has answered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from sandwich.platform.http import ServiceUnavailable
from sandwich.platform.settings import Flow, Settings
from sandwich.services.gateway.app import create_app, deployment_of
from sandwich.services.gateway.context import GatewayContext
from sandwich.services.gateway.domain import LoginGuard, RateLimiter
from sandwich.services.gateway.keys import Keys
from sandwich.services.gateway.openapi import public_openapi
from sandwich.services.gateway.system import Deployment
from tests.unit.wiring import built_context

pytestmark = pytest.mark.unit


def context_in(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> GatewayContext:
    context = built_context(create_app, monkeypatch, flow)
    assert isinstance(context, GatewayContext)
    return context


@pytest.mark.parametrize("flow", list(Flow))
def test_only_the_async_flow_takes_orders_at_the_gateway(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    context = context_in(flow, monkeypatch)
    assert (context.order_intake is not None) is (flow is Flow.ASYNC)
    assert context.keys.http is context.http
    assert context.openapi is None


def test_the_system_page_names_the_flow_and_the_broker_in_use() -> None:
    nats = deployment_of(Settings(flow=Flow.HYBRID, nats_url="nats://x:4222", kafka_bootstrap_servers=""))
    kafka = deployment_of(
        Settings(flow=Flow.ASYNC, nats_url="nats://x:4222", kafka_bootstrap_servers="k:9092")
    )
    sync = deployment_of(Settings(flow=Flow.SYNC, nats_url="nats://x:4222", kafka_bootstrap_servers=""))
    assert (nats.interaction_style, nats.broker) == ("hybrid", "nats")
    assert (kafka.interaction_style, kafka.broker) == ("async", "kafka")
    assert (sync.interaction_style, sync.broker) == ("sync", "none")  # no broker carries events in sync


@dataclass
class Answer:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class FakeServices:
    """Every service answers an empty OpenAPI document, except those named in `down`."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.asked: list[str] = []

    async def request(self, service: str, method: str, path: str, **_: Any) -> Answer:
        self.asked.append(service)
        if service in self.down:
            raise ServiceUnavailable(service, "down")
        return Answer(200, {"paths": {}, "components": {"schemas": {}}})


def bare_context(http: FakeServices) -> GatewayContext:
    return GatewayContext(
        http=http,  # type: ignore[arg-type]
        keys=Keys(http),  # type: ignore[arg-type]
        login_limiter=RateLimiter(10),
        register_limiter=RateLimiter(10),
        login_guard=LoginGuard(5, 10, 60.0),
        deployment=Deployment("hybrid", "nats", lambda name: f"http://{name}"),
    )


async def test_the_public_document_is_kept_only_once_every_service_answered() -> None:
    services = FakeServices()
    services.down = {"menu"}
    context = bare_context(services)
    partial = await public_openapi(context)
    assert "Error" in partial["components"]["schemas"] and context.openapi is None
    services.down = set()
    complete = await public_openapi(context)
    assert context.openapi is complete
    services.asked.clear()
    assert await public_openapi(context) is complete and services.asked == []  # nobody asked again
