"""The gateway's OpenAPI documents the error answers in the contract's shape; 405s name `Allow`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from sandwich.platform.settings import get_settings
from sandwich.services.gateway.api import allowed_methods
from sandwich.services.gateway.domain import Access
from sandwich.services.gateway.openapi import ERROR_SCHEMA, error_statuses, with_error_answers
from sandwich.services.menu.app import create_app as create_menu_app
from tests.credentials import SignedTransport

pytestmark = pytest.mark.unit

FASTAPI_422 = {
    "description": "Validation Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/x_HTTPValidationError"}}},
}


def test_a_public_read_answers_only_unavailability() -> None:
    assert error_statuses("/.well-known/jwks.json", "GET", Access.PUBLIC, {}) == ["503"]


def test_login_and_register() -> None:
    body: dict[str, Any] = {"requestBody": {"content": {}}}
    assert error_statuses("/api/v1/auth/login", "POST", Access.PUBLIC, body) == [
        "400",
        "401",
        "422",
        "429",
        "503",
    ]
    assert error_statuses("/api/v1/auth/register", "POST", Access.PUBLIC, body) == [
        "400",
        "409",
        "422",
        "429",
        "503",
    ]


def test_an_admin_write_with_an_id() -> None:
    operation = {"requestBody": {"content": {}}, "parameters": [{"name": "food_point_id"}]}
    statuses = error_statuses("/api/v1/admin/food-points/{food_point_id}", "PATCH", Access.ADMIN, operation)
    assert statuses == ["400", "401", "403", "404", "409", "422", "503"]


def test_role_routes_answer_403() -> None:
    assert "403" in error_statuses("/api/v1/kitchen/orders", "GET", Access.USER, {})
    assert "403" in error_statuses("/api/v1/user/{username}", "GET", Access.USER, {"parameters": [{}]})
    assert "403" not in error_statuses("/api/v1/menu", "GET", Access.USER, {})


def test_answers_use_the_error_schema_and_replace_fastapis_422() -> None:
    operation: dict[str, Any] = {"responses": {"200": {"description": "ok"}, "422": FASTAPI_422}}
    documented = with_error_answers("/api/v1/orders/{order_id}/cancel", "POST", Access.USER, operation)
    assert documented["responses"]["200"] == {"description": "ok"}
    for status in ("401", "404", "409", "422", "503"):
        schema = documented["responses"][status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}, status
    assert operation["responses"]["422"] is FASTAPI_422, "the service's document is left as it was"
    assert ERROR_SCHEMA["properties"]["error"]["required"] == ["code", "message"]


def test_allow_names_the_methods_of_the_path() -> None:
    assert allowed_methods("/api/v1/user/me") == ["GET", "PUT"]
    assert allowed_methods("/api/v1/admin/food-points") == ["GET", "POST"]
    assert allowed_methods("/api/v1/orders/123") == ["GET"]
    assert allowed_methods("/api/v1/pages/orders") == ["GET"]


@pytest.fixture
def menu_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    """The menu service's app as `sandwich serve` builds it, not started (routing needs no database)."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://unused:unused@127.0.0.1:1/unused")
    get_settings.cache_clear()
    yield create_menu_app()
    get_settings.cache_clear()


async def test_a_services_own_405_keeps_allow_in_the_error_shape(menu_app: FastAPI) -> None:
    async with httpx.AsyncClient(
        transport=SignedTransport(menu_app, "menu"), base_url="http://menu"
    ) as client:
        answer = await client.post("/api/v1/menu")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET"
    assert answer.json()["error"]["code"] == "method_not_allowed"
