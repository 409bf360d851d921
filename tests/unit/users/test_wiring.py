"""users' wiring: whether a new profile is announced as UserCreated is decided in app.py (the typed
context's `announces_new_users`), by whether a broker carries events."""

from __future__ import annotations

import pytest

from sandwich.platform.settings import Flow, get_settings
from sandwich.services.users.app import create_app
from sandwich.services.users.context import UsersContext

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("flow", list(Flow))
def test_new_users_are_announced_only_where_a_broker_carries_events(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")  # never connected
    monkeypatch.setenv("SANDWICH_FLOW", flow.value)
    get_settings.cache_clear()
    try:
        context = create_app().state.service.context
    finally:
        get_settings.cache_clear()
    assert isinstance(context, UsersContext)
    assert context.announces_new_users is (flow is not Flow.SYNC)
