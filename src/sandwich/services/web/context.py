"""web's typed context: what its pages keep between requests, made once in app.py.

(One request's view of the apps, the `Page` every route is drawn with, is in page.py.)
"""

from __future__ import annotations

from dataclasses import dataclass

from sandwich.platform.app import typed_context
from sandwich.platform.sealing import Sealer
from sandwich.services.web.gateway_client import GatewayClient


@dataclass
class WebContext:
    """The client of the gateway's public API (web's only way into the platform), the trace
    backend's address for the console's links ("" when none is configured), and the key that seals
    the tokens in the sessions, loaded at startup (None until then)."""

    gateway: GatewayClient
    traces_url: str
    sealer: Sealer | None = None

    @property
    def session_sealer(self) -> Sealer:
        if self.sealer is None:
            raise RuntimeError("web's session sealing key is not loaded yet (a startup hook loads it)")
        return self.sealer


context_of = typed_context(WebContext)
