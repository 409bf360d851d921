"""The gateway's one entry point: match the route, check the token and role, forward.

A missing, expired, wrongly signed or `alg: none` token is 401 before any service is asked.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from sandwich.platform.errors import error_response
from sandwich.platform.identity import Identity
from sandwich.platform.observability import ROUTE_TEMPLATE_KEY
from sandwich.platform.responses import JsonResponse
from sandwich.platform.tokens import InvalidToken
from sandwich.services.gateway import domain
from sandwich.services.gateway.context import GatewayContext, context_of
from sandwich.services.gateway.domain import Access, RouteMatch, match_route
from sandwich.services.gateway.intake import ORDER_CREATE_PATH
from sandwich.services.gateway.keys import RevocationUnknown, TokenRevoked
from sandwich.services.gateway.openapi import public_openapi
from sandwich.services.gateway.pages import orders_page
from sandwich.services.gateway.proxy import forward, read_body
from sandwich.services.gateway.system import system_overview

log = structlog.get_logger("gateway")
router = APIRouter()
Context = Annotated[GatewayContext, Depends(context_of)]

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
LOGIN_PATH = "/api/v1/auth/login"
REGISTER_PATH = "/api/v1/auth/register"
# Paths the gateway answers itself (not in the route table), with their methods.
OWN_ROUTES: dict[str, frozenset[str]] = {
    "/openapi.json": frozenset({"GET"}),
    "/api/v1/pages/orders": frozenset({"GET"}),
    "/api/v1/admin/system": frozenset({"GET"}),
}


def allowed_methods(path: str) -> list[str]:
    """The methods the gateway serves on `path`, for the `Allow` header of a 405."""
    methods: set[str] = set(OWN_ROUTES.get(path, ()))
    for route in domain.ROUTES:
        if route.pattern.match(path):
            methods |= route.methods
    return sorted(methods)


def client_key(request: Request) -> str:
    """The client's address: the connection's peer, or, when the peer is one of
    SANDWICH_TRUSTED_PROXIES, the right-most untrusted X-Forwarded-For address (the ASGI server
    resolves that, see cli/serve.py)."""
    return request.client.host if request.client else "unknown"


def token_error(exc: InvalidToken) -> Response:
    code = "token_revoked" if isinstance(exc, TokenRevoked) else "unauthorized"
    return error_response(401, code, str(exc), {"WWW-Authenticate": "Bearer"})


def revocation_unknown() -> Response:
    return error_response(
        503,
        "service_unavailable",
        "Cannot check the token now (auth is unavailable), try again shortly.",
        {"Retry-After": "2"},
    )


def too_many(wait: float, message: str) -> Response:
    return error_response(429, "too_many_requests", message, {"Retry-After": str(int(wait) + 1)})


def login_username(body: bytes) -> str | None:
    """The username a login body names, in lower case as auth compares it (None when it names
    none: auth refuses it anyway)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    username = parsed.get("username") if isinstance(parsed, dict) else None
    return username[:64].lower() if isinstance(username, str) and username else None


@router.get("/openapi.json", include_in_schema=False)
async def openapi(context: Context) -> dict[str, Any]:
    return await public_openapi(context)


@router.get("/api/v1/pages/orders")
async def orders_page_route(request: Request, context: Context) -> Response:
    """The orders page of ADR 000 in one call: user, orders, basket and menu fetched in parallel; a
    part whose service is down is null and named in `unavailable`, the page still answers 200."""
    try:
        identity = await context.keys.identity(request.headers.get("authorization"), require_fresh=False)
    except InvalidToken as exc:
        return token_error(exc)
    return JsonResponse(await orders_page(context.http, identity))


@router.get("/api/v1/admin/system")
async def system_route(request: Request, context: Context) -> Response:
    """The platform at a glance for the operations console (admin): every service's liveness and
    readiness, the flow and broker, orders per status, outbox backlog, event lag and error rates."""
    try:
        identity = await context.keys.identity(request.headers.get("authorization"))
    except InvalidToken as exc:
        return token_error(exc)
    if not identity.is_admin:
        return error_response(403, "forbidden", "Only an admin may look at the whole system.")
    return JsonResponse(await system_overview(context.http, context.deployment))


@router.api_route("/{path:path}", methods=METHODS, include_in_schema=False)
async def gateway(request: Request, context: Context) -> Response:
    found, route = match_route(request.method, request.url.path)
    if request.url.path in OWN_ROUTES:
        found, route = RouteMatch.WRONG_METHOD, None
    if found is RouteMatch.UNKNOWN:
        return error_response(404, "not_found", "No such endpoint.")
    if found is RouteMatch.WRONG_METHOD or route is None:
        return error_response(
            405,
            "method_not_allowed",
            "This method is not allowed here.",
            {"Allow": ", ".join(allowed_methods(request.url.path))},
        )
    request.scope[ROUTE_TEMPLATE_KEY] = route.template  # the request's span is named by it
    identity: Identity | None = None
    if route.access is not Access.PUBLIC:
        # A read may go on the token's signature alone while auth is briefly away; a write or an
        # admin route needs to know the token still stands (503 otherwise).
        require_fresh = request.method not in ("GET", "HEAD") or route.access is Access.ADMIN
        try:
            identity = await context.keys.identity(request.headers.get("authorization"), require_fresh)
        except InvalidToken as exc:
            return token_error(exc)
        except RevocationUnknown:
            return revocation_unknown()
        if route.access is Access.ADMIN and not identity.is_admin:
            return error_response(403, "forbidden", "This needs the admin role.")
    client = client_key(request)
    if route.template == REGISTER_PATH:
        allowed, wait = context.register_limiter.allow(client)
        if not allowed:
            return too_many(wait, "Too many registrations from this address, slow down.")
    if route.template == LOGIN_PATH:
        allowed, wait = context.login_limiter.allow(client)
        if not allowed:
            return too_many(wait, "Too many login attempts, slow down.")
    try:
        body = await read_body(request)
    except ClientDisconnect:
        # Gone, or cut off by the server's body deadline (cli/deadlines.py): nobody reads this.
        return error_response(408, "request_timeout", "The request came too slowly.")
    if body is None:
        return error_response(413, "payload_too_large", "The request body is too large.")
    intake = context.order_intake
    if intake is not None and identity is not None and route.template == ORDER_CREATE_PATH:
        return await intake.accept(identity, body, request.headers.get("idempotency-key"))
    username = login_username(body) if route.template == LOGIN_PATH else None
    if username is None:
        return await forward(context.http, route.service, request, body, identity)
    guard = context.login_guard
    wait = guard.wait(username, client)
    if wait > 0:
        return too_many(wait, "Too many failed logins for this account, try again later.")
    # Counted as a failure until auth says otherwise, so concurrent guesses cannot slip past the limit.
    attempt = guard.failed(username, client)
    answer = await forward(context.http, route.service, request, body, identity)
    if answer.status_code == 200:
        guard.succeeded(username, client, attempt)
    elif answer.status_code != 401:
        guard.forget(username, client, attempt)
    return answer
