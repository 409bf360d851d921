"""Service credentials and the gateway's user assertions (platform/service_auth.py), and the one
table of who may call what (platform/trust.py)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import httpx
import jwt
import pytest
from fastapi import FastAPI

from sandwich.platform.identity import Identity, InvalidCredential
from sandwich.platform.service_auth import (
    ALGORITHM,
    CALLER_HEADER,
    RequireCaller,
    ServiceKeys,
    ensure_service_keys,
)
from sandwich.platform.trust import allowed_callers

pytestmark = pytest.mark.unit

ALICE = Identity("7f6a3c1e-0000-4000-8000-0000000000a1", "alice", frozenset({"customer"}))


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    ensure_service_keys(tmp_path / "secrets", ["gateway", "orders", "billing", "menu"])
    return tmp_path / "secrets"


def test_keys_are_made_once_and_kept_private(secrets: Path) -> None:
    folder = secrets / "services"
    before = (folder / "orders.key").read_bytes()
    ensure_service_keys(secrets, ["orders"])
    assert (folder / "orders.key").read_bytes() == before
    assert stat.S_IMODE(os.stat(folder / "orders.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700


def test_a_caller_token_proves_the_caller_to_its_callee_only(secrets: Path) -> None:
    orders = ServiceKeys.load(secrets, "orders")
    billing = ServiceKeys.load(secrets, "billing")
    menu = ServiceKeys.load(secrets, "menu")
    token = orders.caller_token("billing")
    assert billing.verify_caller(token) == "orders"
    with pytest.raises(InvalidCredential):
        menu.verify_caller(token)  # made for billing
    with pytest.raises(InvalidCredential):
        billing.verify_caller(None)


def test_a_token_signed_with_another_key_or_expired_is_refused(secrets: Path, tmp_path: Path) -> None:
    billing = ServiceKeys.load(secrets, "billing")
    ensure_service_keys(tmp_path / "other", ["orders"])
    impostor = ServiceKeys.load(tmp_path / "other", "orders")
    with pytest.raises(InvalidCredential):
        billing.verify_caller(impostor.caller_token("billing"))
    orders_private = ServiceKeys.load(secrets, "orders")._private
    now = int(time.time())
    expired = jwt.encode(
        {"iss": "orders", "aud": "billing", "iat": now - 600, "exp": now - 300},
        orders_private,
        algorithm=ALGORITHM,
    )
    with pytest.raises(InvalidCredential):
        billing.verify_caller(expired)
    unsigned = jwt.encode({"iss": "orders", "aud": "billing", "exp": now + 60}, key=None, algorithm="none")  # type: ignore[arg-type]
    with pytest.raises(InvalidCredential):
        billing.verify_caller(unsigned)


def test_only_the_gateway_asserts_users(secrets: Path) -> None:
    gateway = ServiceKeys.load(secrets, "gateway")
    orders = ServiceKeys.load(secrets, "orders")
    assert orders.verify_user(gateway.user_assertion(ALICE)) == ALICE
    with pytest.raises(InvalidCredential):
        orders.verify_user(orders.user_assertion(ALICE))  # a service cannot speak for a user


def test_the_table_names_each_internal_call_and_leaves_public_routes_to_the_gateway() -> None:
    assert allowed_callers("billing", "POST", "/billing/account/operate") == {"orders"}
    assert allowed_callers("orders", "POST", "/internal/v1/orders/42/assign") == {"kitchen"}
    assert allowed_callers("orders", "GET", "/internal/v1/orders/42") == {"order_info", "kitchen", "delivery"}
    assert allowed_callers("billing", "GET", "/api/v1/billing/account") == {"gateway"}
    assert (
        allowed_callers("orders", "POST", "/internal/v1/orders/42/refund") == frozenset()
    )  # billing's, not orders'


async def test_require_caller_answers_401_403_and_lets_probes_in(secrets: Path) -> None:
    billing = ServiceKeys.load(secrets, "billing")
    app = FastAPI()

    @app.post("/billing/account/operate")
    async def operate() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "live"}

    guarded = RequireCaller(app, billing)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=guarded), base_url="http://billing"
    ) as client:
        missing = await client.post("/billing/account/operate")
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthenticated_caller"
        as_menu = {CALLER_HEADER: ServiceKeys.load(secrets, "menu").caller_token("billing")}
        refused = await client.post("/billing/account/operate", headers=as_menu)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "caller_not_allowed"
        as_orders = {CALLER_HEADER: ServiceKeys.load(secrets, "orders").caller_token("billing")}
        assert (await client.post("/billing/account/operate", headers=as_orders)).json() == {"ok": "yes"}
        assert (await client.get("/health/live")).status_code == 200
