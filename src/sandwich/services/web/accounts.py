"""Signing up, in and out, and the language switch."""

from __future__ import annotations

from typing import Annotated

import jwt
from fastapi import APIRouter, Depends
from fastapi.responses import Response

from sandwich.services.web import i18n, sessions
from sandwich.services.web.gateway_client import Answer
from sandwich.services.web.page import LANGUAGE_COOKIE, Page, page_of, set_session_cookie
from sandwich.services.web.sessions import home_of

router = APIRouter(include_in_schema=False)

PageDep = Annotated[Page, Depends(page_of)]


@router.get("/")
async def home(page: PageDep) -> Response:
    return page.redirect(page.session.home if page.session else "/signin")


@router.get("/signin")
async def signin_form(page: PageDep) -> Response:
    return page.render("signin.html")


@router.post("/signin")
async def signin(page: PageDep) -> Response:
    username, password = page.form.get("username", ""), page.form.get("password", "")
    answer = await page.api(
        "POST",
        "/api/v1/auth/login",
        json={"username": username, "password": password},
    )
    if not answer.ok:
        return page.render("signin.html", status=answer.status, error=answer, username=username)
    return await _open(page, answer)


@router.get("/signup")
async def signup_form(page: PageDep) -> Response:
    return page.render("signup.html")


@router.post("/signup")
async def signup(page: PageDep) -> Response:
    fields = {name: page.form.get(name, "") for name in ("username", "password", "email")}
    answer = await page.api("POST", "/api/v1/auth/register", json=fields)
    if not answer.ok:
        return page.render("signup.html", status=answer.status, error=answer, **_without_password(fields))
    login = await page.api(
        "POST",
        "/api/v1/auth/login",
        json={"username": fields["username"], "password": fields["password"]},
    )
    if not login.ok:
        return page.render("signin.html", status=login.status, error=login, username=fields["username"])
    return await _open(page, login)


@router.post("/signout")
async def signout(page: PageDep) -> Response:
    async with page.database.begin() as conn:
        await sessions.close_session(conn, page.request.cookies.get(sessions.COOKIE))
    response = page.redirect("/signin")
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


@router.post("/language")
async def switch_language(page: PageDep) -> Response:
    language = page.form.get("language", i18n.DEFAULT)
    back = page.form.get("back", "/")
    response = page.redirect(back if back.startswith("/") and not back.startswith("//") else "/")
    if language in i18n.LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, language, max_age=365 * 24 * 3600, samesite="strict", path="/")
    return response


def _without_password(fields: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in fields.items() if name != "password"}


async def _open(page: Page, login: Answer) -> Response:
    """A session for the token the gateway just issued. Its claims only choose the pages to show (the
    token came from the gateway over this server's own connection, and every use of it goes back
    to the gateway, which verifies it), so they are read without checking the signature here."""
    token = str(login.body["access_token"])
    claims = jwt.decode(token, options={"verify_signature": False})
    lifetime = max(60, int(login.body.get("expires_in") or 3600))
    async with page.database.begin() as conn:
        session_id = await sessions.open_session(
            conn,
            page.context.session_sealer,
            token=token,
            user_id=str(claims["sub"]),
            username=str(claims.get("username", "")),
            roles=frozenset(map(str, claims.get("roles", ()))),
            food_point_id=claims.get("food_point_id") or None,
            lifetime_seconds=lifetime,
        )
    response = page.redirect(home_of(frozenset(map(str, claims.get("roles", ())))))
    set_session_cookie(response, session_id, lifetime, secure=page.request.url.scheme == "https")
    return response
