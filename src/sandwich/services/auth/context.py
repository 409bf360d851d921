"""auth's typed context: what its routes and use cases are given, made once in app.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sandwich.platform.app import typed_context
from sandwich.platform.tokens import SigningKey
from sandwich.services.auth.ports import BillingAccounts, Passwords, Profiles
from sandwich.services.auth.unit_of_work import AuthUnitOfWork


@dataclass(frozen=True)
class AuthPorts:
    """What a registration reaches outside auth's database: the password hash, users (the profile),
    and how billing hears of the new account (a port chosen by the interaction style)."""

    passwords: Passwords
    profiles: Profiles
    billing_accounts: BillingAccounts


@dataclass
class AuthContext:
    """A new unit of work per use case, the ports, how long a token lasts, and the token signing
    keys, newest first: empty until the startup hook has loaded (or made) them."""

    unit_of_work: Callable[[], AuthUnitOfWork]
    ports: AuthPorts
    token_ttl_seconds: int
    signing_keys: list[SigningKey] = field(default_factory=list)


context_of = typed_context(AuthContext)
