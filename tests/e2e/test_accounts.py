"""Accounts over the gateway: register, login, profile, and every way a token can be bad."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path

import asyncpg
import pytest

from sandwich.platform.db import plain_url
from sandwich.platform.sealing import Sealer, token_signing_sealing_key
from sandwich.platform.tokens import ISSUER, SigningKey, issue_token
from sandwich.supervisor import Platform
from tests.e2e.client import Api

pytestmark = pytest.mark.e2e


async def test_register_login_and_profile(api: Api) -> None:
    username, password = await api.register()
    token = await api.login(username, password)
    me = await api.as_user(token).get("/api/v1/user/me")
    assert me.status_code == 200
    profile = me.json()
    assert profile["username"] == username and profile["email"] == f"{username}@example.com"
    assert uuid.UUID(profile["user_id"])

    updated = await api.as_user(token).put(
        "/api/v1/user/me", json={"email": "new@example.com", "phone": "+7 900 000 00 00", "full_name": "A B"}
    )
    assert updated.status_code == 200 and updated.json()["full_name"] == "A B"
    by_name = await api.as_user(token).get(f"/api/v1/user/{username}")
    assert by_name.status_code == 200 and by_name.json()["email"] == "new@example.com"


async def test_account_exists_with_zero_balance_when_register_answers(api: Api) -> None:
    customer = await api.new_customer()
    answer = await customer.get("/api/v1/billing/account")
    assert answer.status_code == 200
    assert answer.json() == {"balance": 0, "currency": "RUB"}


async def test_register_refuses_taken_username_weak_password_and_bad_email(api: Api) -> None:
    username, _ = await api.register()
    taken = await api.post(
        "/api/v1/auth/register",
        json={"username": username, "password": "long-enough-1", "email": "x@example.com"},
    )
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "username_taken"
    weak = await api.post(
        "/api/v1/auth/register", json={"username": "weakling", "password": "short", "email": "x@example.com"}
    )
    assert weak.status_code == 422 and weak.json()["error"]["code"] == "weak_password"
    bad_email = await api.post(
        "/api/v1/auth/register", json={"username": "bademail", "password": "long-enough-1", "email": "nope"}
    )
    assert bad_email.status_code == 422 and "error" in bad_email.json()


async def test_wrong_password_is_401(api: Api) -> None:
    username, _ = await api.register()
    answer = await api.post("/api/v1/auth/login", json={"username": username, "password": "wrong-password"})
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_credentials"
    unknown = await api.post("/api/v1/auth/login", json={"username": "nobody-here", "password": "whatever1"})
    assert unknown.status_code == 401


async def test_another_users_profile_is_403_unless_admin(api: Api, admin: Api) -> None:
    alice = await api.new_customer()
    bob = await api.new_customer()
    assert (await alice.get(f"/api/v1/user/{bob.username}")).status_code == 403
    assert (await admin.get(f"/api/v1/user/{bob.username}")).status_code == 200


async def test_jwks_is_public(api: Api) -> None:
    answer = await api.get("/.well-known/jwks.json")
    assert answer.status_code == 200
    keys = answer.json()["keys"]
    assert keys and all(key["alg"] == "EdDSA" and "d" not in key for key in keys)


def _unsigned_token(claims: dict[str, object], kid: str) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{part(claims)}."


async def _real_signing_key(platform: Platform) -> SigningKey:
    """The auth service's own key, read from its database and opened with the sealing key of the
    platform's secrets (the database alone does not give it away): to forge an expired but
    well-signed token."""
    prefix = platform._env["SANDWICH_DB_PREFIX"]
    conn = await asyncpg.connect(plain_url(platform.database_url, f"{prefix}_auth"))
    try:
        row = await conn.fetchrow("SELECT kid, sealed_pem FROM signing_keys ORDER BY created_at DESC LIMIT 1")
    finally:
        await conn.close()
    assert row is not None
    sealer = Sealer.load(token_signing_sealing_key(Path(platform.secrets_dir)))
    return SigningKey(row["kid"], sealer.open(bytes(row["sealed_pem"]), row["kid"]))


async def test_bad_tokens_are_401(api: Api, platform: Platform) -> None:
    customer = await api.new_customer()
    assert customer.token is not None
    claims = {"sub": str(uuid.uuid4()), "username": customer.username, "roles": ["customer", "admin"]}
    real_key = await _real_signing_key(platform)
    expired = issue_token(real_key, claims, ttl_seconds=-30)
    foreign = issue_token(SigningKey(real_key.kid, SigningKey.generate().private_pem), claims, 300)
    now = int(time.time())
    alg_none = _unsigned_token({**claims, "iss": ISSUER, "iat": now, "exp": now + 300}, real_key.kid)
    tampered = customer.token[:-4] + ("AAAA" if not customer.token.endswith("AAAA") else "BBBB")
    cases = {
        "missing": {},
        "expired": {"Authorization": f"Bearer {expired}"},
        "wrongly signed": {"Authorization": f"Bearer {foreign}"},
        "alg none": {"Authorization": f"Bearer {alg_none}"},
        "tampered": {"Authorization": f"Bearer {tampered}"},
        "not bearer": {"Authorization": f"Basic {customer.token}"},
        "garbage": {"Authorization": "Bearer abc.def"},
    }
    for case, headers in cases.items():
        answer = await api.client.get("/api/v1/user/me", headers=headers)
        assert answer.status_code == 401, case
        assert answer.json()["error"]["code"] == "unauthorized", case
    # The same real key with valid times is accepted for a user that exists: the checks above failed
    # for the right reason.
    user_id = (await customer.get("/api/v1/user/me")).json()["user_id"]
    valid = issue_token(real_key, {**claims, "sub": user_id, "roles": ["customer"]}, 300)
    assert (
        await api.client.get("/api/v1/billing/account", headers={"Authorization": f"Bearer {valid}"})
    ).status_code == 200
    # A well-signed token of a user that does not exist is refused, and no account is opened for it.
    ghost = issue_token(real_key, claims, 300)
    for method, path in (("GET", "/api/v1/billing/account"), ("GET", "/api/v1/pages/orders")):
        refused = await api.client.request(method, path, headers={"Authorization": f"Bearer {ghost}"})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "token_revoked", path


async def test_client_sent_identity_headers_are_ignored(api: Api) -> None:
    alice = await api.new_customer()
    bob = await api.new_customer()
    spoofed = await alice.get(
        "/api/v1/user/me",
        headers={"X-Username": bob.username or "", "X-User-Id": str(uuid.uuid4()), "X-Roles": "admin"},
    )
    assert spoofed.status_code == 200 and spoofed.json()["username"] == alice.username
    as_admin = await alice.get(f"/api/v1/user/{bob.username}", headers={"X-Roles": "admin"})
    assert as_admin.status_code == 403
    no_token = await api.client.get("/api/v1/user/me", headers={"X-Username": alice.username or ""})
    assert no_token.status_code == 401


async def test_admin_sets_roles_and_the_next_token_carries_them(api: Api, admin: Api) -> None:
    username, password = await api.register()
    refused = await api.as_user(await api.login(username, password)).put(
        f"/api/v1/admin/users/{username}/roles", json={"roles": ["admin"]}
    )
    assert refused.status_code == 403
    granted = await admin.put(f"/api/v1/admin/users/{username}/roles", json={"roles": ["courier"]})
    assert granted.status_code == 200 and granted.json()["roles"] == ["courier", "customer"]
    cook_without_point = await admin.put(f"/api/v1/admin/users/{username}/roles", json={"roles": ["cook"]})
    assert cook_without_point.status_code == 422
    unknown = await admin.put("/api/v1/admin/users/nobody-at-all/roles", json={"roles": ["courier"]})
    assert unknown.status_code == 404
    token = await api.login(username, password)
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert payload["roles"] == ["courier", "customer"]


async def test_admin_lists_people_by_role_and_name_a_page_at_a_time(api: Api, admin: Api) -> None:
    tag = uuid.uuid4().hex[:8]
    names = [f"list{tag}_{n}" for n in range(5)]
    for name in names:
        await api.register(name)
    await admin.put(f"/api/v1/admin/users/{names[1]}/roles", json={"roles": ["courier"]})
    await admin.put(f"/api/v1/admin/users/{names[3]}/roles", json={"roles": ["courier"]})

    seen: list[str] = []
    after: str | None = None
    for _ in range(5):  # two a page: three pages, the last one saying there is no next
        params = {"q": f"LIST{tag}", "limit": "2"} | ({"after": after} if after else {})
        page = await admin.get("/api/v1/admin/users", params=params)
        assert page.status_code == 200, page.text
        seen += [person["username"] for person in page.json()["items"]]
        after = page.json()["next_after"]
        if after is None:
            break
    assert seen == names  # the prefix without letter case, in username order, each once

    couriers = await admin.get("/api/v1/admin/users", params={"q": f"list{tag}", "role": "courier"})
    assert [(p["username"], p["roles"]) for p in couriers.json()["items"]] == [
        (names[1], ["courier", "customer"]),
        (names[3], ["courier", "customer"]),
    ]
    nobody = await admin.get("/api/v1/admin/users", params={"q": f"list{tag}_%"})
    assert nobody.status_code == 422  # not a username's letters; `%` is no wildcard either way
    underscore = await admin.get("/api/v1/admin/users", params={"q": f"list{tag}_"})
    assert len(underscore.json()["items"]) == 5
    for bad in ({"role": "chef"}, {"limit": "0"}, {"limit": "201"}, {"after": "x" * 33}, {"q": "a\u0000"}):
        refused = await admin.get("/api/v1/admin/users", params=bad)
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["error"]["code"]
    customer = await api.new_customer()
    assert (await customer.get("/api/v1/admin/users")).status_code == 403
    assert (await api.client.get("/api/v1/admin/users")).status_code == 401


async def test_malformed_and_invalid_bodies_are_4xx_in_the_error_shape(api: Api) -> None:
    customer = await api.new_customer()
    cases = [
        ("POST", "/api/v1/auth/register", b"{not json", 400),
        ("POST", "/api/v1/auth/register", b'{"username": "abc"}', 422),
        ("POST", "/api/v1/auth/login", b'{"username": "a", "password": "b", "extra": 1}', 422),
        ("POST", "/api/v1/billing/account/deposit", b'{"amount": 10, "currency": "USD"}', 422),
        ("POST", "/api/v1/billing/account/deposit", b"", 400),
        ("POST", "/api/v1/billing/account/deposit", b"[1, 2]", 422),
        ("POST", "/api/v1/order", b'{"items": [], "delivery": {"address": "x", "lat": 1, "lon": 1}}', 422),
        ("POST", "/api/v1/order", b'{"items": [{"menu_item_id": "x", "quantity": 1}]}', 422),
        ("PUT", "/api/v1/user/me", b'{"email": "a@example.com", "username": "hijack"}', 422),
    ]
    for method, path, body, status in cases:
        answer = await customer.call(method, path, content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == status, (path, body, answer.text)
        error = answer.json()["error"]
        assert error["code"] and error["message"], (path, body)
    unknown = await customer.get("/api/v1/no-such-thing")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    wrong_method = await customer.call("DELETE", "/api/v1/menu")
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()
