"""Wiring of web, the people's apps: customer, cook, courier (and, next, the operations console).

A front of its own, like the gateway: browsers reach it directly (no service credential), and it
reaches the platform only through the gateway's public API. Its own database holds the sessions;
its own sealing key seals the tokens in them.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandwich.platform.app import Service
from sandwich.platform.sealing import Sealer, web_sessions_sealing_key
from sandwich.services.web import accounts, customer, operations, sessions, staff
from sandwich.services.web.context import WebContext
from sandwich.services.web.gateway_client import GatewayClient, GatewayDown
from sandwich.services.web.page import CsrfRefused, page_of

HERE = Path(__file__).parent
SESSION_SWEEP_SECONDS = 600.0


def create_app() -> FastAPI:
    service = Service(
        "web",
        title="sandwich apps",
        description="The people's apps: customer, cook and courier, on the gateway's public API.",
        migrations=HERE / "migrations",
    )
    context = WebContext(
        gateway=GatewayClient(lambda: service.settings.service_url("gateway")),
        traces_url=service.settings.traces_url,
    )
    service.context = context

    async def load_sealer() -> None:
        context.sealer = Sealer.load(web_sessions_sealing_key(service.settings.secrets_dir))

    async def forget_expired_sessions() -> None:
        async with service.database.begin() as conn:
            await sessions.forget_expired(conn)

    service.on_startup(load_sealer)
    service.every("forget-expired-sessions", SESSION_SWEEP_SECONDS, forget_expired_sessions)
    app = service.create_app(
        accounts.router, customer.router, staff.router, operations.router, openapi_url=None
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _install_page_errors(app)
    return app


def _install_page_errors(app: FastAPI) -> None:
    """Errors as pages in words, never JSON or a stack trace, for a person in a browser."""

    async def drawn(request: Request, template: str, status: int, **values: object) -> Response:
        try:
            page = await page_of(request)
        except CsrfRefused:
            return HTMLResponse("Forbidden", status_code=403)
        return page.render(template, status=status, **values)

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, _: CsrfRefused) -> Response:
        return HTMLResponse(
            '<!doctype html><title>403</title><p data-code="csrf_refused">This form is out of date: '
            "go back, reload the page and send it again.</p>",
            status_code=403,
        )

    @app.exception_handler(GatewayDown)
    async def _down(request: Request, _: GatewayDown) -> Response:
        return await drawn(request, "unavailable.html", 503)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return await drawn(request, "not_found.html", 404)
        return HTMLResponse(str(exc.detail), status_code=exc.status_code)
