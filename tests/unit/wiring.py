"""A service's app built in-process as its wiring makes it, for the tests of that wiring: the
environment it is given, a database URL that is never connected, and fresh settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI

from sandwich.platform.settings import Flow, get_settings

NEVER_CONNECTED = "postgresql://nobody@127.0.0.1:1/none"


def built_context(
    create_app: Callable[[], FastAPI], monkeypatch: pytest.MonkeyPatch, flow: Flow | None = None, **env: str
) -> Any:
    """The typed context `create_app` puts on its service, in `flow` with `env` (SANDWICH_ names)."""
    monkeypatch.setenv("DATABASE_URL", NEVER_CONNECTED)
    if flow is not None:
        monkeypatch.setenv("SANDWICH_FLOW", flow.value)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        return create_app().state.service.context
    finally:
        get_settings.cache_clear()
