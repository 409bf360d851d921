"""Wiring of the gateway: no database; the JWKS keys and the login limiter; in the async flow
(ADR 002) a broker connection, on which it publishes the orders it accepts."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from sandwich.platform.app import Service
from sandwich.platform.settings import Flow, Settings, get_settings
from sandwich.services.gateway.api import router
from sandwich.services.gateway.context import GatewayContext
from sandwich.services.gateway.domain import LoginGuard, RateLimiter
from sandwich.services.gateway.intake import BROKER_ACK_SECONDS, OrderIntake
from sandwich.services.gateway.keys import Keys
from sandwich.services.gateway.system import Deployment


def deployment_of(settings: Settings) -> Deployment:
    """The flow and broker as the System page names them: "none" when no broker carries events."""
    broker = "kafka" if settings.kafka_bootstrap_servers else "nats" if settings.nats_url else "none"
    return Deployment(
        interaction_style=settings.flow.value,
        broker=broker if settings.uses_broker else "none",
        service_url=settings.service_url,
    )


def create_app() -> FastAPI:
    takes_orders = get_settings().flow is Flow.ASYNC
    service = Service(
        "gateway",
        title="sandwich gateway",
        description="The public API of sandwich.",
        publishes=takes_orders,
        publish_timeout_seconds=BROKER_ACK_SECONDS,
    )
    settings = service.settings
    keys = Keys(service.http)
    service.context = GatewayContext(
        http=service.http,
        keys=keys,
        login_limiter=RateLimiter(settings.login_rate_per_minute),
        register_limiter=RateLimiter(settings.register_rate_per_minute),
        login_guard=LoginGuard(
            settings.login_failures_per_client,
            settings.login_failures_per_account,
            settings.login_failure_window_seconds,
        ),
        deployment=deployment_of(settings),
        order_intake=OrderIntake(service) if takes_orders else None,
    )

    async def load_keys_until_ready() -> None:
        while not await keys.refresh():
            await asyncio.sleep(0.3)

    async def start_loading_keys() -> None:
        service.spawn(load_keys_until_ready(), "load-jwks")

    async def keys_loaded() -> bool:
        return keys.loaded

    service.on_startup(start_loading_keys)
    service.readiness_checks["signing_keys"] = keys_loaded
    # The public document is assembled from the services' documents by the /openapi.json route.
    return service.create_app(router, openapi_url=None)
