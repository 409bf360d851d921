"""What billing's use cases and routes are given, made once in app.py: the unit of work to open,
the envelope maker of its events, and the benchmark's delay fault. Never the platform itself."""

from __future__ import annotations

from dataclasses import dataclass

from sandwich.platform.app import typed_context
from sandwich.services.billing.commands import Envelopes
from sandwich.services.billing.faults import InjectedDelay
from sandwich.services.billing.unit_of_work import UnitsOfWork


@dataclass(frozen=True)
class BillingContext:
    unit_of_work: UnitsOfWork
    envelopes: Envelopes
    injected_delay: InjectedDelay


context_of = typed_context(BillingContext)
