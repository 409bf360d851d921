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
    public state is copied on entry and put back when the block ends without a commit (attributes
    starting with `_`, such as a repository's reference to its unit, are not copied). A fake
    repository that writes events with its change takes them from `events` and reports them
    `written`, as the Postgres one does."""

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
        self._saved = self._snapshot()
        return self

    def statements(self) -> Self:
        """In memory every step is all-or-nothing: the same unit serves."""
        return self

    async def commit(self) -> None:
        pending = self.events.take()
        self.events.written(pending)
        self.announced.extend(self.events.in_outbox)
        self.commits += 1
        self._committed = True
        self._saved = self._snapshot()
        self.events = RecordedEvents()  # announced once: a later commit of the same block adds only its own

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._committed and error is None:
            return
        for name, state in self._saved.items():
            getattr(self, name).__dict__.update(state)
        self.rollbacks += 1

    def _snapshot(self) -> dict[str, dict[str, Any]]:
        return {
            name: copy.deepcopy({k: v for k, v in vars(getattr(self, name)).items() if not k.startswith("_")})
            for name in self.repositories
        }

    def announced_types(self) -> list[str]:
        return [event.envelope.type for event in self.announced]
