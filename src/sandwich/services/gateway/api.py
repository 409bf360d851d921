"""The gateway's one entry point: match the route, check the token and role, forward.

A missing, expired, wrongly signed or `alg: none` token is 401 before any service is asked.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from sandwich.platform.app import Service, service_of
from sandwich.platform.errors import error_response
from sandwich.platform.http import ServiceUnavailable
from sandwich.platform.identity import Identity
from sandwich.platform.responses import JsonResponse
from sandwich.platform.tokens import InvalidToken, TokenVerifier
from sandwich.services.gateway.domain import Access, RateLimiter, RouteMatch, match_route
from sandwich.services.gateway.intake import ORDER_CREATE_PATH, OrderIntake
from sandwich.services.gateway.openapi import public_openapi
from sandwich.services.gateway.pages import orders_page
from sandwich.services.gateway.proxy import forward, read_body

log = structlog.get_logger("gateway")
router = APIRouter()

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


class Keys:
    """The token verifier, refreshed from auth's JWKS at start and when an unknown key id shows up."""

    def __init__(self, service: Service):
        self.service = service
        self.verifier = TokenVerifier()
        self.loaded = False

    async def refresh(self) -> bool:
        if time.monotonic() - self.verifier.last_refresh < 1.0 and self.loaded:
            return False
        try:
            answer = await self.service.http.request("auth", "GET", "/.well-known/jwks.json", idempotent=True)
        except ServiceUnavailable:
            return False
        if answer.ok:
            self.verifier.load_jwks(answer.body)
            self.loaded = True
        return answer.ok

    async def identity(self, authorization: str | None) -> Identity:
        if not authorization:
            raise InvalidToken("missing bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("expected: Authorization: Bearer <token>")
        token = token.strip()
        claims = self.verifier.remembered(token)
        if claims is None:
            if not self.verifier.knows(self.verifier.key_id(token)):
                await self.refresh()
            claims = self.verifier.verify(token)
        roles = claims.get("roles", [])
        username = claims.get("username")
        if not isinstance(roles, list) or not isinstance(username, str):
            raise InvalidToken("token lacks identity claims")
        return Identity(str(claims["sub"]), username, frozenset(map(str, roles)), claims.get("food_point_id"))


def client_key(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/openapi.json", include_in_schema=False)
async def openapi(service: Annotated[Service, Depends(service_of)]) -> dict[str, Any]:
    return await public_openapi(service)


@router.get("/api/v1/pages/orders")
async def orders_page_route(request: Request, service: Annotated[Service, Depends(service_of)]) -> Response:
    """The orders page of ADR 000 in one call: user, orders, basket and menu fetched in parallel; a
    part whose service is down is null and named in `unavailable`, the page still answers 200."""
    keys: Keys = service.state["keys"]
    try:
        identity = await keys.identity(request.headers.get("authorization"))
    except InvalidToken as exc:
        return error_response(401, "unauthorized", str(exc), {"WWW-Authenticate": "Bearer"})
    return JsonResponse(await orders_page(service, identity))


@router.api_route("/{path:path}", methods=METHODS, include_in_schema=False)
async def gateway(request: Request, service: Annotated[Service, Depends(service_of)]) -> Response:
    found, route = match_route(request.method, request.url.path)
    if found is RouteMatch.UNKNOWN:
        return error_response(404, "not_found", "No such endpoint.")
    if found is RouteMatch.WRONG_METHOD or route is None:
        return error_response(405, "method_not_allowed", "This method is not allowed here.")
    identity: Identity | None = None
    if route.access is not Access.PUBLIC:
        keys: Keys = service.state["keys"]
        try:
            identity = await keys.identity(request.headers.get("authorization"))
        except InvalidToken as exc:
            return error_response(401, "unauthorized", str(exc), {"WWW-Authenticate": "Bearer"})
        if route.access is Access.ADMIN and not identity.is_admin:
            return error_response(403, "forbidden", "This needs the admin role.")
    if route.template == "/api/v1/auth/login":
        limiter: RateLimiter = service.state["login_limiter"]
        allowed, wait = limiter.allow(client_key(request))
        if not allowed:
            return error_response(
                429,
                "too_many_requests",
                "Too many login attempts, slow down.",
                {"Retry-After": str(int(wait) + 1)},
            )
    body = await read_body(request)
    if body is None:
        return error_response(413, "payload_too_large", "The request body is too large.")
    intake: OrderIntake | None = service.state.get("order_intake")
    if intake is not None and identity is not None and route.template == ORDER_CREATE_PATH:
        return await intake.accept(identity, body, request.headers.get("idempotency-key"))
    return await forward(service.http, route.service, request, body, identity)
