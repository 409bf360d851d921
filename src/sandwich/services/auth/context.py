"""auth's typed context: what its routes keep between requests, made once in app.py."""

from __future__ import annotations

from dataclasses import dataclass, field

from sandwich.platform.app import typed_context
from sandwich.platform.tokens import SigningKey
from sandwich.services.auth.ports import BillingAccounts


@dataclass
class AuthContext:
    """How billing hears of a new account (a port chosen by the interaction style), and the token
    signing keys, newest first: empty until the startup hook has loaded (or made) them."""

    billing_accounts: BillingAccounts
    signing_keys: list[SigningKey] = field(default_factory=list)


context_of = typed_context(AuthContext)
