"""Every public operation of the gateway's /openapi.json, swept with schemathesis (issue 15): cases
generated from the document (valid ones and, negatively, invalid ones), sent as a customer and as an
admin; no answer may be a 5xx. Run on the hybrid platform on NATS only, with a bounded number of
examples per operation, so that it stays well under three minutes in CI."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from sandwich.cli.supervisor import Platform
from tests.e2e.client import Api

pytestmark = pytest.mark.e2e

schemathesis = pytest.importorskip("schemathesis")

# Examples per operation, identity and generation mode (SANDWICH_SWEEP_EXAMPLES to change it).
EXAMPLES = int(os.environ.get("SANDWICH_SWEEP_EXAMPLES", "25"))
REQUEST_TIMEOUT = 10.0


@dataclass
class Sweep:
    operations: int = 0
    cases: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    # Operations with nothing to make invalid (no parameters, no body) have no negative cases.
    unsatisfiable: list[str] = field(default_factory=list)


def _run(operation: Any, mode: Any, who: str, token: str, base_url: str, result: Sweep) -> None:
    """EXAMPLES cases of one operation in one generation mode, sent with one identity's token."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case: Any) -> None:
        response = case.call(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=REQUEST_TIMEOUT
        )
        result.cases += 1
        result.statuses[response.status_code] = result.statuses.get(response.status_code, 0) + 1
        if response.status_code >= 500 and len(result.failures) < 50:
            result.failures.append(
                f"{operation.label} as {who} ({mode.value}): {response.status_code} "
                f"{response.text[:200]!r}\n    {case.as_curl_command()}"
            )

    try:
        call()
    except Unsatisfiable:
        result.unsatisfiable.append(f"{operation.label} ({mode.value})")


def sweep(base_url: str, document: dict[str, Any], tokens: dict[str, str]) -> Sweep:
    schema = schemathesis.openapi.from_dict(document)
    result = Sweep()
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    for found in schema.get_all_operations():
        operation = found.ok()
        result.operations += 1
        for who, token in tokens.items():
            for mode in modes:
                _run(operation, mode, who, token, base_url, result)
    return result


async def test_no_operation_answers_a_server_error(platform: Platform, api: Api, admin: Api) -> None:
    if platform.flow.value != "hybrid" or platform.broker_kind.value != "nats":
        pytest.skip("the schemathesis sweep runs on the hybrid platform on NATS only (CI time)")
    customer = await api.new_customer(deposit=100_000)
    document = (await api.get("/openapi.json")).json()
    tokens = {"customer": customer.token or "", "admin": admin.token or ""}
    started = time.monotonic()
    result = await asyncio.to_thread(sweep, platform.gateway_url, document, tokens)
    took = time.monotonic() - started
    print(
        f"\nschemathesis sweep: {result.operations} operations, {result.cases} cases in {took:.1f} s, "
        f"statuses {dict(sorted(result.statuses.items()))}, {len(result.failures)} server errors"
    )
    assert result.operations >= 25, "the gateway's document lost operations"
    assert result.failures == [], "\n".join(result.failures)
