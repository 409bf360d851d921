"""users' wiring: whether a new profile is announced as UserCreated is decided in app.py (the typed
context's `announce_new_user`), by whether a broker carries events."""

from __future__ import annotations

import pytest

from sandwich.platform.events import USER_CREATED
from sandwich.platform.settings import Flow
from sandwich.services.users.app import create_app
from sandwich.services.users.context import UsersContext
from sandwich.services.users.domain import Profile
from tests.unit.wiring import built_context

pytestmark = pytest.mark.unit
USER_ID = "00000000-0000-0000-0000-0000000000a1"


@pytest.mark.parametrize("flow", list(Flow))
def test_new_users_are_announced_only_where_a_broker_carries_events(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = built_context(create_app, monkeypatch, flow)
    assert isinstance(context, UsersContext)
    events = context.announce_new_user(Profile(USER_ID, "alice", "alice@example.org", None, None))
    assert [event.envelope.type for event in events] == ([] if flow is Flow.SYNC else [USER_CREATED])
    assert all(event.envelope.key == USER_ID for event in events)
