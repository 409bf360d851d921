"""The gateway's check of a token's version against auth's (issue 15), on a gateway process of its
own in front of a stand-in auth that can be told to fail: a raised version or an unknown user is
401 `token_revoked` within the cache's 2 s; while auth cannot be asked, reads go on the signature,
writes are 503 unless the user's version was learnt in the last minute."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandwich.platform.tokens import SigningKey, issue_token
from tests.e2e.bare_gateway import gateway_before

pytestmark = pytest.mark.e2e


@dataclass
class StandIn:
    key: SigningKey = field(default_factory=SigningKey.generate)
    versions: dict[str, int] = field(default_factory=dict)
    down: bool = False
    asked: int = 0

    def token(self, user_id: str, version: int) -> str:
        claims = {"sub": user_id, "username": f"u{user_id[:8]}", "roles": ["customer"], "ver": version}
        return issue_token(self.key, claims, 300)

    def app(self) -> Starlette:
        async def jwks(request: Request) -> JSONResponse:
            return JSONResponse({"keys": [self.key.public_jwk()]})

        async def version(request: Request) -> JSONResponse:
            self.asked += 1
            if self.down:
                return JSONResponse({"error": {"code": "down", "message": "down"}}, status_code=503)
            user_id = request.path_params["user_id"]
            if user_id not in self.versions:
                return JSONResponse({"error": {"code": "user_not_found", "message": "no"}}, status_code=404)
            return JSONResponse({"user_id": user_id, "version": self.versions[user_id]})

        async def anything(request: Request) -> JSONResponse:
            return JSONResponse({"ok": True}, status_code=201 if request.method == "POST" else 200)

        return Starlette(
            routes=[
                Route("/.well-known/jwks.json", jwks),
                Route("/internal/v1/users/{user_id}/token-version", version),
                Route("/{path:path}", anything, methods=["GET", "POST", "PUT"]),
            ]
        )


@pytest.fixture(scope="module")
def stand_in() -> StandIn:
    return StandIn()


@pytest.fixture(scope="module")
def gateway(stand_in: StandIn) -> Iterator[str]:
    # billing's routes are the ones under test, answered by the stand-in too
    with gateway_before(stand_in.app(), behind=("auth", "billing"), env={}) as url:
        yield url


def _call(gateway: str, method: str, token: str) -> httpx.Response:
    path = "/api/v1/billing/account" if method == "GET" else "/api/v1/billing/account/deposit"
    body = None if method == "GET" else {"amount": 100}
    return httpx.request(method, gateway + path, json=body, headers={"Authorization": f"Bearer {token}"})


def test_a_raised_version_revokes_older_tokens_within_seconds(gateway: str, stand_in: StandIn) -> None:
    user = str(uuid.uuid4())
    stand_in.versions[user] = 0
    old = stand_in.token(user, 0)
    assert _call(gateway, "GET", old).status_code == 200
    asked = stand_in.asked
    for _ in range(20):
        assert _call(gateway, "GET", old).status_code == 200
    assert stand_in.asked - asked <= 1  # cached per user, not asked per request
    stand_in.versions[user] = 1
    began = time.monotonic()
    while (answer := _call(gateway, "POST", old)).status_code == 201:
        assert time.monotonic() - began < 3.0
        time.sleep(0.05)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "token_revoked"
    assert _call(gateway, "POST", stand_in.token(user, 1)).status_code == 201


def test_a_token_of_an_unknown_user_is_refused(gateway: str, stand_in: StandIn) -> None:
    ghost = stand_in.token(str(uuid.uuid4()), 0)
    for method in ("GET", "POST"):
        answer = _call(gateway, method, ghost)
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "token_revoked"


def test_while_auth_is_away_reads_go_on_writes_need_a_recent_version(gateway: str, stand_in: StandIn) -> None:
    known, stranger = str(uuid.uuid4()), str(uuid.uuid4())
    stand_in.versions[known] = stand_in.versions[stranger] = 0
    assert _call(gateway, "GET", stand_in.token(known, 0)).status_code == 200
    stand_in.down = True
    try:
        time.sleep(2.2)  # past the cache's freshness
        assert _call(gateway, "POST", stand_in.token(known, 0)).status_code == 201  # learnt < 60 s ago
        assert (
            _call(gateway, "GET", stand_in.token(stranger, 0)).status_code == 200
        )  # a read, on the signature
        refused = _call(gateway, "POST", stand_in.token(stranger, 0))
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "2"
    finally:
        stand_in.down = False
