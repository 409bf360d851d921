"""users' typed context: what its routes and use cases are given, made once in app.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sandwich.platform.app import typed_context
from sandwich.platform.outbox import Event
from sandwich.services.users.domain import Profile
from sandwich.services.users.unit_of_work import UsersUnitOfWork

NewUserEvents = Callable[[Profile], list[Event]]
"""The events that announce a new profile (UserCreated), or none."""


@dataclass(frozen=True)
class UsersContext:
    """`announce_new_user`: the events a new profile makes, recorded in its transaction (the outbox).
    app.py gives UserCreated where a broker carries events; in the `sync` flow nobody listens for it
    (auth opens the billing account itself), so it gives none."""

    unit_of_work: Callable[[], UsersUnitOfWork]
    announce_new_user: NewUserEvents


context_of = typed_context(UsersContext)
