"""The in-memory unit of work every service's use-case tests build on (cosmicpython's
FakeUnitOfWork): it keeps what a use case committed and the events it announced, and forgets what
a block did without a commit, so the tests see the same all-or-nothing the database gives."""

from __future__ import annotations

import copy
from types import TracebackType
from typing import Any, Self

from sandwich.platform.outbox import Event
from sandwich.platform.unit_of_work import RecordedEvents


class FakeUnitOfWork:
    """A service's fake adds its in-memory repositories as attributes named in `repositories`; their
    state is copied on entry and put back when the block ends without a commit."""

    repositories: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.events = RecordedEvents()
        self.commits = 0
        self.rollbacks = 0
        self.announced: list[Event] = []
        self._saved: dict[str, Any] = {}
        self._committed = False

    async def __aenter__(self) -> Self:
        self.events = RecordedEvents()
        self._committed = False
        self._saved = {name: copy.deepcopy(getattr(self, name).__dict__) for name in self.repositories}
        return self

    def statements(self) -> Self:
        """In memory every step is all-or-nothing: the same unit serves."""
        return self

    async def commit(self) -> None:
        pending = self.events.take()
        self.events.written(pending)
        self.announced.extend(pending)
        self.commits += 1
        self._committed = True
        self._saved = {name: copy.deepcopy(getattr(self, name).__dict__) for name in self.repositories}

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._committed and error is None:
            return
        for name, state in self._saved.items():
            getattr(self, name).__dict__.update(state)
        self.rollbacks += 1

    def announced_types(self) -> list[str]:
        return [event.envelope.type for event in self.announced]
