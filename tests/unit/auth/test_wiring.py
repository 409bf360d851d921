"""auth's wiring: how billing hears of a new account is chosen in app.py by the interaction style
(the `billing_accounts` port of its typed context), and the HTTP port never fails a registration."""

from __future__ import annotations

from typing import Any

import pytest

from sandwich.platform.http import ServiceUnavailable
from sandwich.platform.settings import Flow
from sandwich.services.auth.app import create_app
from sandwich.services.auth.context import AuthContext
from sandwich.services.auth.ports import AccountsOpenedFromEvents, AccountsOpenedOverHttp
from tests.unit.wiring import built_context

pytestmark = pytest.mark.unit


def context_in(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> AuthContext:
    context = built_context(create_app, monkeypatch, flow)
    assert isinstance(context, AuthContext)
    return context


@pytest.mark.parametrize("flow", list(Flow))
def test_auth_opens_the_billing_account_itself_only_without_a_broker(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = context_in(flow, monkeypatch)
    expected = AccountsOpenedOverHttp if flow is Flow.SYNC else AccountsOpenedFromEvents
    assert type(context.ports.billing_accounts) is expected
    assert context.signing_keys == []  # loaded by the startup hook, not at build time


class FakeBilling:
    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.calls: list[tuple[str, str, str, Any]] = []

    async def request(self, service: str, method: str, path: str, **options: Any) -> None:
        self.calls.append((service, method, path, options.get("json")))
        if self.down:
            raise ServiceUnavailable(service, "down")


async def test_over_http_billing_is_asked_to_open_the_account_once() -> None:
    billing = FakeBilling()
    await AccountsOpenedOverHttp(billing).open("u-1", "alice")  # type: ignore[arg-type]
    assert billing.calls == [
        ("billing", "POST", "/internal/v1/accounts", {"user_id": "u-1", "username": "alice"})
    ]


async def test_billing_being_away_does_not_fail_the_registration() -> None:
    billing = FakeBilling(down=True)
    await AccountsOpenedOverHttp(billing).open("u-1", "alice")  # type: ignore[arg-type]
    assert len(billing.calls) == 1
