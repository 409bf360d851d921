"""users' typed context: what its routes need besides the database, made once in app.py."""

from __future__ import annotations

from dataclasses import dataclass

from sandwich.platform.app import typed_context


@dataclass(frozen=True)
class UsersContext:
    """`announces_new_users`: whether a new profile is announced as UserCreated (through the outbox,
    in the profile's transaction). app.py says so when a broker carries events; in the `sync` flow
    nobody listens for it (auth opens the billing account itself)."""

    announces_new_users: bool


context_of = typed_context(UsersContext)
