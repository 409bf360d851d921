"""What every page of the apps is made with: the language and its words, the signed-in person (if
any), the session's CSRF token, and the one way a page is drawn (templates, security headers).

Pages are drawn on the server (Jinja2) and work without JavaScript; the one script, static and
same-origin, only follows live streams. The Content-Security-Policy allows nothing inline.
"""

from __future__ import annotations

import secrets
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from sandwich.platform.app import Service
from sandwich.platform.db import Database
from sandwich.services.web import i18n, sessions
from sandwich.services.web.context import WebContext, context_of
from sandwich.services.web.gateway_client import Answer, GatewayClient
from sandwich.services.web.sessions import Session

LANGUAGE_COOKIE = "lang"
FORM_COOKIE = "sandwich_form"
"""Before signing in, the CSRF token lives in this cookie (SameSite=Strict) and in every form: a form
posted from another site carries neither, so signing someone in as someone else is refused too."""
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


class CsrfRefused(Exception):
    """A form came back without its session's CSRF token: drawn as 403, nothing done."""


@dataclass
class Page:
    """One request's view of the apps: the service's context, and its database (the sessions)."""

    request: Request
    context: WebContext
    database: Database
    language: str
    session: Session | None
    form: dict[str, str] = field(default_factory=dict)
    form_token: str = ""
    new_form_token: bool = False

    @property
    def words(self) -> dict[str, str]:
        return dict(i18n.WORDS[self.language])

    @property
    def gateway(self) -> GatewayClient:
        return self.context.gateway

    @property
    def token(self) -> str | None:
        return self.session.token if self.session else None

    async def api(self, method: str, path: str, **options: Any) -> Answer:
        """A call of the gateway's public API as this page's person, in this page's language."""
        return await self.gateway.call(method, path, token=self.token, language=self.language, **options)

    def money(self, kopecks: int | None) -> str:
        return i18n.money(kopecks or 0, self.language)

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        body = TEMPLATES.get_template(template).render(
            page=self,
            t=self.words,
            session=self.session,
            csrf=self.session.csrf_token if self.session else self.form_token,
            money=self.money,
            status_word=lambda status_: i18n.status_word(status_, self.language),
            new_key=lambda: secrets.token_urlsafe(18),
            **values,
        )
        response = HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
        if self.new_form_token:
            response.set_cookie(FORM_COOKIE, self.form_token, httponly=True, samesite="strict", path="/")
        return response

    def redirect(self, to: str) -> RedirectResponse:
        return RedirectResponse(to, status_code=303, headers=SECURITY_HEADERS)


async def page_of(request: Request) -> Page:
    """The request's Page; for a POST, its form, checked against the session's CSRF token."""
    service: Service = request.app.state.service
    context = await context_of(request)
    language = i18n.choose(request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language"))
    cookie = request.cookies.get(sessions.COOKIE)
    async with service.database.connect() as conn:
        session = await sessions.find_session(conn, context.session_sealer, cookie)
    page = Page(
        request, context, service.database, language, session, form_token=request.cookies.get(FORM_COOKIE, "")
    )
    if session is None and not page.form_token:
        page.form_token, page.new_form_token = secrets.token_urlsafe(24), True
    if request.method == "POST":
        page.form = await read_form(request)
        expected = session.csrf_token if session is not None else page.form_token
        if page.new_form_token or not secrets.compare_digest(page.form.get("csrf", ""), expected):
            raise CsrfRefused
    return page


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form (what every form of the apps sends), last value of each field; 64 KB at most."""
    body = await request.body()
    if len(body) > 65_536:
        return {}
    fields = urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: value for name, value in fields}


def safe_id(raw: str) -> str:
    """An id for a path of the API: a UUID, or one that matches nothing (the API answers 404)."""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return "00000000-0000-0000-0000-000000000000"


def number(text: str | None) -> float | str:
    """A typed number as a number; left as typed when it is not one, for the API to refuse."""
    try:
        return float((text or "").replace(",", "."))
    except ValueError:
        return text or ""


def integer(text: str | None) -> int | str:
    """A typed whole number; left as typed when it is not one, for the API to refuse."""
    stripped = (text or "").strip()
    return int(stripped) if stripped.isdigit() else stripped


def set_session_cookie(response: Response, session_id: str, lifetime_seconds: int, secure: bool) -> None:
    response.set_cookie(
        sessions.COOKIE,
        session_id,
        max_age=lifetime_seconds,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
