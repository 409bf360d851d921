"""Wiring of the gateway: no database; the JWKS keys and the login limiter; in the async flow
(ADR 002) a broker connection, on which it publishes the orders it accepts."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from sandwich.platform.app import Service
from sandwich.platform.settings import Flow, get_settings
from sandwich.services.gateway.api import Keys, router
from sandwich.services.gateway.domain import LoginGuard, RateLimiter
from sandwich.services.gateway.intake import BROKER_ACK_SECONDS, OrderIntake


def create_app() -> FastAPI:
    takes_orders = get_settings().flow is Flow.ASYNC
    service = Service(
        "gateway",
        title="sandwich gateway",
        description="The public API of sandwich.",
        publishes=takes_orders,
        publish_timeout_seconds=BROKER_ACK_SECONDS,
    )
    keys = Keys(service)
    service.state["keys"] = keys
    settings = service.settings
    service.state["login_limiter"] = RateLimiter(settings.login_rate_per_minute)
    service.state["register_limiter"] = RateLimiter(settings.register_rate_per_minute)
    service.state["login_guard"] = LoginGuard(
        settings.login_failures_per_client,
        settings.login_failures_per_account,
        settings.login_failure_window_seconds,
    )
    service.state["order_intake"] = OrderIntake(service) if takes_orders else None

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
