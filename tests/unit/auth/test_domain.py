import pytest

from sandwich.services.auth.domain import InvalidRoles, normalized_roles, password_problem

pytestmark = pytest.mark.unit


def test_short_passwords_are_weak() -> None:
    assert password_problem("1234567") is not None
    assert password_problem("12345678") is None


def test_customer_role_is_always_kept() -> None:
    assert normalized_roles(["courier"], None) == (["courier", "customer"], None)


def test_cook_needs_a_food_point_and_only_a_cook_has_one() -> None:
    assert normalized_roles(["cook"], "fp1") == (["cook", "customer"], "fp1")
    with pytest.raises(InvalidRoles):
        normalized_roles(["cook"], None)
    with pytest.raises(InvalidRoles):
        normalized_roles(["courier"], "fp1")


def test_unknown_roles_are_refused() -> None:
    with pytest.raises(InvalidRoles):
        normalized_roles(["superuser"], None)
