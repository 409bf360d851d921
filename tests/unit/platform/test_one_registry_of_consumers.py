"""Who consumes what is declared where the consumer is (`service.consume` in each service's app.py),
and two tables repeat it for other readers: `platform/flows.SUBSCRIBERS` (whom the sync flow pushes
each topic to) and `platform/trust.BUS_CONSUMES` (what the broker lets each service read). This test
builds every service's app in each flow, as `sandwich serve` would (nothing is started), and holds
the two tables to the declarations, so that none of the three can drift from the others."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from sandwich.platform.flows import SUBSCRIBERS
from sandwich.platform.settings import SERVICES, Flow, get_settings
from sandwich.platform.trust import BUS_CONSUMES

pytestmark = pytest.mark.unit


def _apps() -> Iterator[tuple[str, FastAPI]]:
    for name in SERVICES:
        module = importlib.import_module(f"sandwich.services.{name}.app")
        yield name, module.create_app()


@pytest.fixture
def declared(monkeypatch: pytest.MonkeyPatch) -> dict[Flow, set[tuple[str, str, str]]]:
    """(service, topic, consumer group) of every `service.consume` in each flow."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")  # never connected
    found: dict[Flow, set[tuple[str, str, str]]] = {}
    for flow in Flow:
        monkeypatch.setenv("SANDWICH_FLOW", flow.value)
        get_settings.cache_clear()
        found[flow] = {
            (name, spec.topic, spec.consumer) for name, app in _apps() for spec in app.state.service.consumers
        }
    get_settings.cache_clear()
    return found


def test_the_sync_flow_pushes_each_topic_to_exactly_the_services_that_consume_it(
    declared: dict[Flow, set[tuple[str, str, str]]],
) -> None:
    pushed = {(push.service, topic) for topic, pushes in SUBSCRIBERS.items() for push in pushes}
    consuming = {(service, topic) for service, topic, _ in declared[Flow.SYNC]}
    assert pushed == consuming
    assert ("kitchen", "order.events") in pushed


def test_the_broker_lets_each_service_read_exactly_what_it_consumes_in_some_flow(
    declared: dict[Flow, set[tuple[str, str, str]]],
) -> None:
    allowed = {(service, topic, group) for service, pairs in BUS_CONSUMES.items() for topic, group in pairs}
    consuming = declared[Flow.HYBRID] | declared[Flow.ASYNC]
    assert consuming == allowed
    assert ("orders", "billing.payments", "orders-payments") in consuming  # async only
