"""web's typed context: made in app.py with the gateway client, the sealing key loaded at startup."""

from __future__ import annotations

import pytest

from sandwich.platform.sealing import Sealer
from sandwich.platform.settings import get_settings
from sandwich.services.web.app import create_app
from sandwich.services.web.context import WebContext
from sandwich.services.web.gateway_client import GatewayClient

pytestmark = pytest.mark.unit


def test_the_app_carries_a_web_context_without_its_sealer_before_startup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")  # never connected
    monkeypatch.setenv("SANDWICH_TRACES_URL", "http://traces.example/")
    get_settings.cache_clear()
    try:
        context = create_app().state.service.context
    finally:
        get_settings.cache_clear()
    assert isinstance(context, WebContext)
    assert isinstance(context.gateway, GatewayClient)
    assert context.traces_url == "http://traces.example/"
    with pytest.raises(RuntimeError, match="not loaded"):
        _ = context.session_sealer


def test_the_loaded_sealer_is_the_sessions_one() -> None:
    sealer = Sealer(b"k" * 32)
    context = WebContext(gateway=GatewayClient(lambda: "http://gateway"), traces_url="", sealer=sealer)
    assert context.session_sealer is sealer
