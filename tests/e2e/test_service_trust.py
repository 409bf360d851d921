"""Nothing behind the gateway trusts a caller it cannot verify: through the running platform's own
ports, every internal route refuses a call without a service credential (401) and a service that is
not among its callers (403, platform/trust.py), and a user is believed only as the gateway asserts it."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest

from sandwich.platform.identity import USER_HEADER, Identity
from sandwich.platform.service_auth import CALLER_HEADER, ServiceKeys
from sandwich.platform.settings import SERVICES
from sandwich.platform.trust import INTERNAL_CALLS
from sandwich.supervisor import Platform
from tests.e2e.client import Api

pytestmark = pytest.mark.e2e


def keys(platform: Platform, service: str) -> ServiceKeys:
    return ServiceKeys.load(Path(platform.secrets_dir), service)


def concrete(path: str) -> str:
    """A path of the template: the sync flow's event route on order.events, any id a fresh UUID."""
    return re.sub(r"\{[a-z_]+\}", str(uuid.uuid4()), path.replace("{topic}", "order.events"))


@pytest.mark.parametrize("call", INTERNAL_CALLS, ids=lambda c: f"{c.caller}->{c.callee} {c.method} {c.path}")
async def test_every_internal_route_refuses_the_anonymous_and_the_wrong_caller(
    platform: Platform, call: object
) -> None:
    assert hasattr(call, "callee")
    callee, method, path = call.callee, call.method, call.path  # type: ignore[attr-defined]
    if callee not in platform.services:
        pytest.skip(f"{callee} does not run here")
    url = platform.service_url(callee) + concrete(path)
    allowed = {c.caller for c in INTERNAL_CALLS if c.matches(callee, method, concrete(path))}
    stranger = next(s for s in SERVICES if s not in allowed and s != callee)
    async with httpx.AsyncClient(timeout=10) as client:
        anonymous = await client.request(method, url, json={})
        assert anonymous.status_code == 401, anonymous.text
        assert anonymous.json()["error"]["code"] == "unauthenticated_caller"
        wrong = await client.request(
            method, url, json={}, headers={CALLER_HEADER: keys(platform, stranger).caller_token(callee)}
        )
        assert wrong.status_code == 403, (stranger, wrong.text)
        assert wrong.json()["error"]["code"] == "caller_not_allowed"


async def test_public_routes_behind_the_gateway_answer_only_the_gateway(platform: Platform) -> None:
    url = platform.service_url("billing") + "/api/v1/billing/account"
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(url)).status_code == 401
        as_orders = {CALLER_HEADER: keys(platform, "orders").caller_token("billing")}
        assert (await client.get(url, headers=as_orders)).status_code == 403


async def test_a_user_is_believed_only_as_the_gateway_asserts_it(platform: Platform, api: Api) -> None:
    """A forged identity (the old bare headers, or an assertion signed by another service) with a
    valid credential of a service is not taken as the user's."""
    customer = await api.new_customer(deposit=5_000)
    me = (await customer.get("/api/v1/user/me")).json()
    victim = Identity(me["user_id"], me["username"], frozenset({"customer", "admin"}))
    url = platform.service_url("billing") + "/api/v1/billing/account"
    as_gateway = {CALLER_HEADER: keys(platform, "gateway").caller_token("billing")}
    bare = {"X-User-Id": victim.user_id, "X-Username": victim.username, "X-Roles": "admin"}
    forged = {USER_HEADER: keys(platform, "orders").user_assertion(victim)}
    genuine = {USER_HEADER: keys(platform, "gateway").user_assertion(victim)}
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(url, headers={**as_gateway, **bare})).status_code == 401
        assert (await client.get(url, headers={**as_gateway, **forged})).status_code == 401
        answer = await client.get(url, headers={**as_gateway, **genuine})
        assert answer.status_code == 200 and answer.json()["balance"] == 5_000
