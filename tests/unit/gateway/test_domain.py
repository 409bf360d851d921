import pytest

from sandwich.services.gateway.domain import Access, RateLimiter, RouteMatch, match_route

pytestmark = pytest.mark.unit


def test_routes_match_templates_and_methods() -> None:
    found, route = match_route("GET", "/api/v1/orders/123")
    assert found is RouteMatch.FOUND and route is not None and route.service == "order_info"
    assert match_route("DELETE", "/api/v1/orders/123")[0] is RouteMatch.WRONG_METHOD
    assert match_route("GET", "/internal/v1/orders/123")[0] is RouteMatch.UNKNOWN
    assert match_route("GET", "/api/v1/orders/1/2")[0] is RouteMatch.UNKNOWN


def test_me_is_not_taken_for_a_username_route() -> None:
    found, route = match_route("PUT", "/api/v1/user/me")
    assert found is RouteMatch.FOUND and route is not None and route.template == "/api/v1/user/me"


def test_admin_paths_need_the_admin_role_and_login_is_public() -> None:
    assert match_route("POST", "/api/v1/admin/menu")[1].access is Access.ADMIN  # type: ignore[union-attr]
    assert match_route("POST", "/api/v1/auth/login")[1].access is Access.PUBLIC  # type: ignore[union-attr]


def test_rate_limiter_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(rate_per_minute=2, clock=lambda: now[0])
    assert limiter.allow("ip")[0]
    assert limiter.allow("ip")[0]
    allowed, wait = limiter.allow("ip")
    assert not allowed and wait == pytest.approx(30.0)
    assert limiter.allow("other-ip")[0]
    now[0] = 30.0
    assert limiter.allow("ip")[0]
