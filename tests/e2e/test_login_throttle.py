"""The gateway's login and register throttle, on a gateway process of its own (`sandwich serve
gateway`, as `up` runs it) in front of a stand-in auth, with the default limits the platform of the
other end-to-end tests turns off: per client address (the peer's, whatever X-Forwarded-For says),
per (username, client) and per username. Clients are told apart by their source address on the
loopback network (127.0.0.x)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.e2e.bare_gateway import gateway_before

pytestmark = pytest.mark.e2e

RIGHT_PASSWORD = "right-password-1"


async def _login(request: Request) -> JSONResponse:
    body = await request.json()
    if body.get("password") == RIGHT_PASSWORD:
        return JSONResponse({"access_token": "t", "token_type": "bearer", "expires_in": 60})
    return JSONResponse({"error": {"code": "invalid_credentials", "message": "no"}}, status_code=401)


async def _register(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"user_id": "u", "username": body.get("username")}, status_code=201)


async def _jwks(request: Request) -> JSONResponse:
    return JSONResponse({"keys": []})


STAND_IN_AUTH = Starlette(
    routes=[
        Route("/api/v1/auth/login", _login, methods=["POST"]),
        Route("/api/v1/auth/register", _register, methods=["POST"]),
        Route("/.well-known/jwks.json", _jwks),
    ]
)


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    limits = {
        "SANDWICH_LOGIN_RATE": "30",
        "SANDWICH_LOGIN_FAILURES": "5",
        "SANDWICH_LOGIN_ACCOUNT_FAILURES": "8",
        "SANDWICH_REGISTER_RATE": "10",
        "SANDWICH_TRUSTED_PROXIES": "127.0.0.5",
    }
    with gateway_before(STAND_IN_AUTH, behind=("auth",), env=limits, ready_path="/health/live") as url:
        yield url


def _from(gateway: str, address: str) -> httpx.Client:
    return httpx.Client(base_url=gateway, transport=httpx.HTTPTransport(local_address=address))


def _attempt(
    client: httpx.Client, username: str, password: str, forwarded_for: str | None = None
) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}, headers=headers
    )


def test_failed_logins_lock_one_account_for_one_client_only(gateway: str) -> None:
    with httpx.Client(base_url=gateway) as client:
        statuses = [
            _attempt(client, "victim", "guess", forwarded_for=f"10.0.0.{n}").status_code for n in range(7)
        ]
        # Rotating X-Forwarded-For changes nothing: the client is the peer; 5 failures, then locked.
        assert statuses == [401] * 5 + [429] * 2
        locked = _attempt(client, "victim", RIGHT_PASSWORD)
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 800
        assert locked.json()["error"]["code"] == "too_many_requests"
        # Another user behind the same address is not locked out, and neither is "Victim".
        assert _attempt(client, "neighbour", RIGHT_PASSWORD).status_code == 200
        assert _attempt(client, "VICTIM", RIGHT_PASSWORD).status_code == 429
    with _from(gateway, "127.0.0.2") as owner:
        assert _attempt(owner, "victim", RIGHT_PASSWORD).status_code == 200


def test_rotating_clients_meet_the_account_cap_but_the_owners_client_gets_in(gateway: str) -> None:
    with _from(gateway, "127.0.0.3") as owner:
        assert _attempt(owner, "target", RIGHT_PASSWORD).status_code == 200
    statuses = []
    for n in range(10, 19):
        with _from(gateway, f"127.0.0.{n}") as attacker:
            statuses.append(_attempt(attacker, "target", "guess").status_code)
    assert statuses == [401] * 8 + [429]
    with _from(gateway, "127.0.0.4") as stranger:
        assert _attempt(stranger, "target", RIGHT_PASSWORD).status_code == 429
    with _from(gateway, "127.0.0.3") as owner:
        assert _attempt(owner, "target", RIGHT_PASSWORD).status_code == 200


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(gateway: str) -> None:
    with _from(gateway, "127.0.0.5") as proxy:
        behind = [_attempt(proxy, "proxied", "guess", "6.6.6.6, 9.9.9.9").status_code for _ in range(6)]
        assert behind == [401] * 5 + [429]  # the client is 9.9.9.9, the right-most untrusted address
        assert _attempt(proxy, "proxied", "guess", "9.9.9.9, 8.8.8.8").status_code == 401  # another client
    with _from(gateway, "127.0.0.6") as direct:
        # Not a trusted proxy: its X-Forwarded-For is ignored, it is a client of its own.
        assert _attempt(direct, "proxied", "guess", "9.9.9.9").status_code == 401


def test_register_is_throttled_per_client(gateway: str) -> None:
    with httpx.Client(base_url=gateway) as client:
        statuses = [
            client.post(
                "/api/v1/auth/register",
                json={"username": f"r{n}", "password": "long-enough-1", "email": "r@example.com"},
                headers={"X-Forwarded-For": f"10.1.0.{n}"},
            ).status_code
            for n in range(12)
        ]
    assert statuses[:10] == [201] * 10 and statuses[10:] == [429, 429]
