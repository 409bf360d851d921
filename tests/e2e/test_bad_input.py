"""Bad input never reaches a 5xx (issue 15): control characters in every text field and path, ids
that are not UUIDs, numbers sent as strings or booleans, usernames that differ only in letter case,
and a 405 that names what is allowed. The hybrid flow on NATS is enough: the rules are the request
models', the same in every flow."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from sandwich.supervisor import Platform
from tests.e2e.client import Api

pytestmark = pytest.mark.e2e

NUL = "\u0000"


# Tests that run in every flow: in async the gateway's intake judges an order's body by the same
# model, and orders rejects an order of an unknown item after the 202.
EVERY_FLOW = {
    "test_a_nul_in_an_order_is_an_invalid_field",
    "test_a_menu_item_id_that_is_not_a_uuid_is_unknown",
}


@pytest.fixture(autouse=True)
def hybrid_only(platform: Platform, request: pytest.FixtureRequest) -> None:
    if request.function.__name__ in EVERY_FLOW:
        return
    if platform.flow.value != "hybrid" or platform.broker_kind.value != "nats":
        pytest.skip("bad input is judged by the request models, alike in every flow: run on hybrid only")


def refused(answer: httpx.Response, *statuses: int) -> dict[str, Any]:
    """The answer is one of `statuses` (422 unless told) in the contract's error shape."""
    assert answer.status_code in (statuses or (422,)), (answer.status_code, answer.text)
    body: dict[str, Any] = answer.json()
    assert set(body["error"]) == {"code", "message"}, body
    return body["error"]


async def test_a_nul_in_accounts_is_an_invalid_field(api: Api) -> None:
    tag = uuid.uuid4().hex[:10]
    base = {"username": f"n{tag}", "password": "long-enough-1", "email": f"n{tag}@example.com"}
    for field in ("phone", "full_name", "password"):
        answer = await api.post("/api/v1/auth/register", json={**base, field: f"a{NUL}b"})
        assert refused(answer)["code"] == "invalid_field", field
    answer = await api.post("/api/v1/auth/register", json={**base, "username": f"n{NUL}{tag}"})
    refused(answer)
    login = await api.post("/api/v1/auth/login", json={"username": f"alice{NUL}", "password": "x" * 9})
    assert refused(login)["code"] == "invalid_field"

    customer = await api.new_customer()
    for field in ("phone", "full_name"):
        answer = await customer.put("/api/v1/user/me", json={"email": "ok@example.com", field: f"x{NUL}y"})
        assert refused(answer)["code"] == "invalid_field", field
    refused(await customer.get("/api/v1/user/bob%00"), 404, 422)


async def test_a_nul_in_an_order_is_an_invalid_field(api: Api, sandwich_item: dict[str, Any]) -> None:
    customer = await api.new_customer()
    line = {"menu_item_id": sandwich_item["id"], "quantity": 1}
    delivery = {"address": f"Tverskaya{NUL} 1", "lat": 55.7, "lon": 37.6}
    answer = await customer.post(
        "/api/v1/order",
        json={"items": [line], "delivery": delivery},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert refused(answer)["code"] == "invalid_field"
    bad_line = {"menu_item_id": f"{sandwich_item['id']}{NUL}", "quantity": 1}
    answer = await customer.post(
        "/api/v1/order",
        json={"items": [bad_line], "delivery": {**delivery, "address": "Tverskaya 1"}},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    refused(answer)
    refused(await customer.put("/api/v1/basket/items/x%00y", json={"quantity": 1}), 404, 422)


async def test_a_menu_item_id_that_is_not_a_uuid_is_unknown(api: Api) -> None:
    customer = await api.new_customer(deposit=100_000)
    for item_id in ("not-a-uuid", "1", "x" * 64):
        answer = await customer.post(
            "/api/v1/order",
            json={
                "items": [{"menu_item_id": item_id, "quantity": 1}],
                "delivery": {"address": "Tverskaya 1", "lat": 55.7, "lon": 37.6},
            },
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        await customer.refused(answer, 422, "unknown_menu_item")


@pytest.mark.parametrize("lat", ["55.7", True])
async def test_coordinates_must_be_numbers(api: Api, sandwich_item: dict[str, Any], lat: Any) -> None:
    customer = await api.new_customer()
    answer = await customer.post(
        "/api/v1/order",
        json={
            "items": [{"menu_item_id": sandwich_item["id"], "quantity": 1}],
            "delivery": {"address": "Tverskaya 1", "lat": lat, "lon": 37.6},
        },
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert refused(answer)["code"] == "invalid_field"


async def test_a_nul_in_administration_is_an_invalid_field(admin: Api) -> None:
    tag = uuid.uuid4().hex[:8]
    menu = await admin.post("/api/v1/admin/menu", json={"name": f"Club{NUL}{tag}", "price": 100})
    assert refused(menu)["code"] == "invalid_field"
    menu = await admin.post(
        "/api/v1/admin/menu",
        json={"name": f"Club {tag}", "price": 100, "ingredients": [{"name": f"br{NUL}ead", "quantity": 1}]},
    )
    assert refused(menu)["code"] == "invalid_field"

    point = {
        "name": f"p {tag}",
        "address": "Arbat 1",
        "lat": 55.7,
        "lon": 37.6,
        "capacity": 3,
        "accepts_delivery": True,
    }
    for field in ("name", "address"):
        answer = await admin.post("/api/v1/admin/food-points", json={**point, field: f"a{NUL}b"})
        assert refused(answer)["code"] == "invalid_field", field
    for field, value in (("lat", "55.7"), ("lat", True), ("capacity", "3"), ("capacity", 3.5)):
        answer = await admin.post("/api/v1/admin/food-points", json={**point, field: value})
        assert refused(answer)["code"] == "invalid_field", (field, value)
    created = await admin.post("/api/v1/admin/food-points", json=point)
    assert created.status_code == 201, created.text
    point_id = created.json()["food_point_id"]
    patched = await admin.call("PATCH", f"/api/v1/admin/food-points/{point_id}", json={"name": f"x{NUL}"})
    assert refused(patched)["code"] == "invalid_field"
    stock = await admin.put(f"/api/v1/admin/food-points/{point_id}/stock/bre%00ad", json={"quantity": 1})
    refused(stock)
    refused(await admin.put("/api/v1/admin/food-points/x%00y/stock/bread", json={"quantity": 1}), 404, 422)

    username, _ = await admin.register()
    roles = await admin.put(f"/api/v1/admin/users/{username}%00/roles", json={"roles": ["courier"]})
    refused(roles)
    roles = await admin.put(f"/api/v1/admin/users/{username}/roles", json={"roles": [f"courier{NUL}"]})
    refused(roles)
    roles = await admin.put(
        f"/api/v1/admin/users/{username}/roles", json={"roles": ["cook"], "food_point_id": f"{point_id}{NUL}"}
    )
    refused(roles)


async def test_usernames_differ_by_more_than_letter_case(api: Api) -> None:
    username, password = await api.register(f"al{uuid.uuid4().hex[:10]}")
    shouted = username.upper()
    taken = await api.post(
        "/api/v1/auth/register",
        json={"username": shouted, "password": "long-enough-1", "email": "x@example.com"},
    )
    assert refused(taken, 409)["code"] == "username_taken"
    token = await api.login(shouted, password)
    me = api.as_user(token)
    profile = await me.get("/api/v1/user/me")
    assert profile.status_code == 200 and profile.json()["username"] == username
    by_name = await me.get(f"/api/v1/user/{shouted}")
    assert by_name.status_code == 200 and by_name.json()["username"] == username


async def test_a_405_names_the_allowed_methods(api: Api) -> None:
    customer = await api.new_customer()
    for method, path, allow in (
        ("DELETE", "/api/v1/user/me", "GET, PUT"),
        ("GET", "/api/v1/order", "POST"),
        ("POST", "/api/v1/pages/orders", "GET"),
    ):
        answer = await customer.call(method, path)
        assert refused(answer, 405)["code"] == "method_not_allowed"
        assert answer.headers["allow"] == allow, (method, path)


async def test_registering_one_name_in_two_cases_at_once_takes_one(api: Api) -> None:
    for _ in range(3):
        name = f"race{uuid.uuid4().hex[:8]}"
        answers = await asyncio.gather(
            *(
                api.post(
                    "/api/v1/auth/register",
                    json={"username": variant, "password": "long-enough-1", "email": f"{name}@example.com"},
                )
                for variant in (name, name.upper())
            )
        )
        assert sorted(answer.status_code for answer in answers) == [201, 409], [a.text for a in answers]
