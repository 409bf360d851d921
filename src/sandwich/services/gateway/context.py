"""The gateway's typed context: what its routes keep between requests, made once in app.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandwich.platform.app import typed_context
from sandwich.platform.http import ServiceClient
from sandwich.services.gateway.domain import LoginGuard, RateLimiter
from sandwich.services.gateway.intake import OrderIntake
from sandwich.services.gateway.keys import Keys
from sandwich.services.gateway.system import Deployment


@dataclass
class GatewayContext:
    """The gateway keeps no data, only these per-process things: its client of the services, the
    token keys and versions it believes, the throttles of logins and registrations, the order intake
    (async flow only: None when orders take POST /api/v1/order themselves), how the platform is
    deployed (for the System page), and the public OpenAPI document once it is complete."""

    http: ServiceClient
    keys: Keys
    login_limiter: RateLimiter
    register_limiter: RateLimiter
    login_guard: LoginGuard
    deployment: Deployment
    order_intake: OrderIntake | None = None
    openapi: dict[str, Any] | None = None


context_of = typed_context(GatewayContext)
