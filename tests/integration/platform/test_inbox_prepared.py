"""A `Prepared` consumer (inbox.py): its slow part runs before the claim's transaction, its effect
inside it, once per event however often the event comes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import sandwich.services.orders as orders_package
from sandwich.platform.events import Envelope
from sandwich.platform.inbox import Prepared, handle_once
from sandwich.platform.sql import Connection
from tests.integration.scratch import scratch_database

pytestmark = pytest.mark.integration

MIGRATIONS = Path(orders_package.__file__).parent / "migrations"  # any schema with an inbox table


class Recorder:
    def __init__(self, fail_apply: bool = False) -> None:
        self.prepared: list[str] = []
        self.applied: list[tuple[str, Any]] = []
        self.fail_apply = fail_apply

    async def prepare(self, envelope: Envelope) -> str:
        self.prepared.append(envelope.event_id)
        return f"priced {envelope.key}"

    async def apply(self, conn: Connection, envelope: Envelope, prepared: Any) -> None:
        # The claim's INSERT gave the transaction an id: seen here only inside that transaction.
        in_transaction = (
            await conn.execute(text("SELECT pg_current_xact_id_if_assigned() IS NOT NULL AS inside"))
        ).one()
        self.applied.append((prepared, in_transaction.inside))
        if self.fail_apply:
            raise RuntimeError("boom")


async def test_prepared_runs_before_and_applies_once_in_the_claims_transaction() -> None:
    async with scratch_database("orders", MIGRATIONS) as db:
        recorder = Recorder()
        consumer = Prepared(recorder.prepare, recorder.apply)
        event = Envelope(type="Test", producer="test", key="order-1")
        assert await handle_once(db, "prepared-test", consumer, event) is True
        assert await handle_once(db, "prepared-test", consumer, event) is False  # redelivered
        assert recorder.prepared == [event.event_id, event.event_id]
        assert recorder.applied == [("priced order-1", True)]


async def test_a_failing_apply_leaves_the_event_unclaimed() -> None:
    async with scratch_database("orders", MIGRATIONS) as db:
        failing = Recorder(fail_apply=True)
        event = Envelope(type="Test", producer="test", key="order-2")
        with pytest.raises(RuntimeError):
            await handle_once(db, "prepared-test", Prepared(failing.prepare, failing.apply), event)
        working = Recorder()
        assert await handle_once(db, "prepared-test", Prepared(working.prepare, working.apply), event)
        assert working.applied == [("priced order-2", True)]
