"""web's typed context: made in app.py with the gateway client, the sealing key loaded at startup."""

from __future__ import annotations

import pytest

from sandwich.platform.sealing import Sealer
from sandwich.services.web.app import create_app
from sandwich.services.web.context import WebContext
from sandwich.services.web.gateway_client import GatewayClient
from tests.unit.wiring import built_context

pytestmark = pytest.mark.unit


def test_the_app_carries_a_web_context_without_its_sealer_before_startup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    context = built_context(create_app, monkeypatch, SANDWICH_TRACES_URL="http://traces.example/")
    assert isinstance(context, WebContext)
    assert isinstance(context.gateway, GatewayClient)
    assert context.traces_url == "http://traces.example/"
    with pytest.raises(RuntimeError, match="not loaded"):
        _ = context.session_sealer


def test_the_loaded_sealer_is_the_sessions_one() -> None:
    sealer = Sealer(b"k" * 32)
    context = WebContext(gateway=GatewayClient(lambda: "http://gateway"), traces_url="", sealer=sealer)
    assert context.session_sealer is sealer
