"""Only admins add menu items: menu's admin route asks for the admin identity (platform/identity.py
answers 401/403 before the use case runs); the menu and the lookup need none."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute

from sandwich.platform.identity import admin_identity
from sandwich.services.menu.api import router

pytestmark = pytest.mark.unit


def test_only_the_admin_route_needs_an_admin() -> None:
    needs_admin = {
        route.path
        for route in router.routes
        if isinstance(route, APIRoute) and admin_identity in [d.call for d in route.dependant.dependencies]
    }
    assert needs_admin == {"/api/v1/admin/menu"}
