"""The login throttle per account and client, and the cache of users' token versions."""

from __future__ import annotations

import pytest

from sandwich.services.gateway.domain import KNOWN_CLIENT_SECONDS, LoginGuard, TokenVersions

pytestmark = pytest.mark.unit


def _guard(now: list[float]) -> LoginGuard:
    return LoginGuard(per_client=3, per_account=5, window_seconds=900, clock=lambda: now[0])


def test_one_client_is_locked_out_of_one_account_only() -> None:
    now = [0.0]
    guard = _guard(now)
    for _ in range(3):
        assert guard.wait("bob", "10.0.0.1") == 0
        guard.failed("bob", "10.0.0.1")
        now[0] += 10
    assert guard.wait("bob", "10.0.0.1") == pytest.approx(900 - 30)
    assert guard.wait("bob", "10.0.0.2") == 0  # the owner elsewhere
    assert guard.wait("alice", "10.0.0.1") == 0  # another user behind the attacker's address
    now[0] = 901
    assert guard.wait("bob", "10.0.0.1") == 0  # the oldest failure left the window


def test_a_success_clears_the_clients_failures() -> None:
    now = [0.0]
    guard = _guard(now)
    guard.failed("bob", "c")
    guard.failed("bob", "c")
    attempt = guard.failed("bob", "c")
    guard.succeeded("bob", "c", attempt)
    assert guard.wait("bob", "c") == 0
    guard.failed("bob", "c")
    assert guard.wait("bob", "c") == 0


def test_a_failure_counted_in_advance_can_be_taken_back() -> None:
    now = [0.0]
    guard = _guard(now)
    for _ in range(3):
        guard.forget("bob", "c", guard.failed("bob", "c"))
    assert guard.wait("bob", "c") == 0


def test_rotating_clients_hit_the_account_cap_but_the_owners_known_client_gets_in() -> None:
    now = [0.0]
    guard = _guard(now)
    guard.succeeded("bob", "home")
    for n in range(5):
        assert guard.wait("bob", f"attacker-{n}") == 0
        guard.failed("bob", f"attacker-{n}")
    assert guard.wait("bob", "attacker-99") > 0
    assert guard.wait("bob", "cafe") > 0  # an unknown client waits too
    assert guard.wait("bob", "home") == 0
    assert guard.wait("alice", "attacker-99") == 0
    now[0] = KNOWN_CLIENT_SECONDS + 1
    assert guard.wait("bob", "attacker-99") == 0


def test_tables_stay_bounded() -> None:
    now = [0.0]
    guard = LoginGuard(per_client=3, per_account=5, window_seconds=10, clock=lambda: now[0], max_keys=100)
    for n in range(1000):
        now[0] = n
        guard.failed(f"user-{n}", "c")
    assert len(guard._pairs) <= 100 and len(guard._accounts) <= 100


def test_token_versions_are_fresh_for_the_ttl_and_known_longer() -> None:
    now = [0.0]
    versions = TokenVersions(ttl_seconds=2.0, clock=lambda: now[0])
    assert versions.fresh("u") == (False, None)
    versions.remember("u", 3)
    versions.remember("gone", None)
    assert versions.fresh("u") == (True, 3)
    assert versions.fresh("gone") == (True, None)
    now[0] = 2.5
    assert versions.fresh("u") == (False, None)
    assert versions.last_known("u", max_age=60) == (True, 3)
    now[0] = 61
    assert versions.last_known("u", max_age=60) == (False, None)
