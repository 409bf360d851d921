"""The apps' sessions over plain HTTP: the token never reaches a page, cookies are HttpOnly and
SameSite=Strict, every form (signing in too) needs its CSRF token, and no script may run inline."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.e2e.client import Api

pytestmark = pytest.mark.e2e

TOKEN_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.")


def _form_token(page: httpx.Response) -> str:
    found = TOKEN_FIELD.search(page.text)
    assert found, "every form carries its CSRF token"
    return found.group(1)


async def test_signing_in_needs_the_forms_token_and_gives_an_httponly_strict_cookie(
    apps: str, api: Api
) -> None:
    username, password = await api.register()
    credentials = {"username": username, "password": password}
    async with httpx.AsyncClient(base_url=apps, timeout=10) as browser:
        first = await browser.get("/signin")
        assert first.status_code == 200
        csp = first.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        form_cookie = first.headers["set-cookie"]
        assert "httponly" in form_cookie.lower() and "samesite=strict" in form_cookie.lower()

        forged = await browser.post("/signin", data=credentials)  # no token: as from another site
        assert forged.status_code == 403
        assert "sandwich_session" not in forged.headers.get("set-cookie", "")

        signed = await browser.post("/signin", data={**credentials, "csrf": _form_token(first)})
        assert signed.status_code == 303, signed.text
        session_cookie = signed.headers["set-cookie"].lower()
        assert "sandwich_session=" in session_cookie
        assert "httponly" in session_cookie and "samesite=strict" in session_cookie

        for path in ("/menu", "/wallet", "/orders", "/basket"):
            page = await browser.get(path)
            assert page.status_code == 200, path
            assert not JWT.search(page.text), f"{path}: a JWT must never reach the page"
        wallet = await browser.get("/wallet")
        no_token = await browser.post("/wallet/top-up", data={"amount": "10"})
        assert no_token.status_code == 403
        topped = await browser.post("/wallet/top-up", data={"amount": "10", "csrf": _form_token(wallet)})
        assert topped.status_code == 303
