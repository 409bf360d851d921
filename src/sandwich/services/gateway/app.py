"""Wiring of the gateway: no database, no broker; the JWKS keys and the login limiter."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from sandwich.platform.app import Service
from sandwich.services.gateway.api import Keys, router
from sandwich.services.gateway.domain import RateLimiter


def create_app() -> FastAPI:
    service = Service("gateway", title="sandwich gateway", description="The public API of sandwich.")
    keys = Keys(service)
    service.state["keys"] = keys
    service.state["login_limiter"] = RateLimiter(service.settings.login_rate_per_minute)

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
