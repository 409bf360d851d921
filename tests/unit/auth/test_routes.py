"""Only admins change roles or list people: every admin route of auth asks for the admin identity
(platform/identity.py answers 401/403 before the use case runs)."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute

from sandwich.platform.identity import admin_identity
from sandwich.services.auth.api import router

pytestmark = pytest.mark.unit


def admin_routes() -> list[APIRoute]:
    return [r for r in router.routes if isinstance(r, APIRoute) and r.path.startswith("/api/v1/admin/")]


def test_every_admin_route_needs_an_admin() -> None:
    routes = admin_routes()
    assert {(r.path, *sorted(r.methods or ())) for r in routes} == {
        ("/api/v1/admin/users/{username}/roles", "PUT"),
        ("/api/v1/admin/users", "GET"),
    }
    for route in routes:
        assert admin_identity in [d.call for d in route.dependant.dependencies], route.path


def test_no_other_route_needs_one() -> None:
    others = [r for r in router.routes if isinstance(r, APIRoute) and r not in admin_routes()]
    assert others and all(admin_identity not in [d.call for d in r.dependant.dependencies] for r in others)
