"""Every public operation of the gateway's /openapi.json, swept with schemathesis (issue 15): cases
generated from the document (valid ones and, negatively, invalid ones), sent as a customer and as an
admin, and the first valid cases of each operation again with a NUL in one text (a body string or a
path parameter) at a time, which random strings seldom hold; no answer may be a 5xx. Run on the hybrid platform on NATS only, with a bounded number of
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

from sandwich.supervisor import Platform
from tests.e2e.client import Api

pytestmark = pytest.mark.e2e

schemathesis = pytest.importorskip("schemathesis")

# Examples per operation, identity and generation mode (SANDWICH_SWEEP_EXAMPLES to change it).
EXAMPLES = int(os.environ.get("SANDWICH_SWEEP_EXAMPLES", "25"))
REQUEST_TIMEOUT = 10.0
# Valid cases per operation and identity that are sent again poisoned, one text at a time.
POISONED_CASES = 3
NUL = "\u0000"


@dataclass
class Sweep:
    operations: int = 0
    cases: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    # Operations with nothing to make invalid (no parameters, no body) have no negative cases.
    unsatisfiable: list[str] = field(default_factory=list)


def string_leaves(value: Any, where: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Where the strings of a JSON value are (keys and indexes from the top)."""
    if isinstance(value, str):
        return [where]
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in string_leaves(item, (*where, key))]
    if isinstance(value, list):
        return [leaf for index, item in enumerate(value) for leaf in string_leaves(item, (*where, index))]
    return []


def poisoned(value: Any, where: tuple[Any, ...]) -> Any:
    """A copy of `value` with a NUL in the middle of the string at `where`."""
    if not where:
        return f"{value[: len(value) // 2]}{NUL}{value[len(value) // 2 :]}"
    head, rest = where[0], where[1:]
    if isinstance(value, dict):
        return {**value, head: poisoned(value[head], rest)}
    return [poisoned(item, rest) if index == head else item for index, item in enumerate(value)]


def _run(operation: Any, mode: Any, who: str, token: str, base_url: str, result: Sweep) -> None:
    """EXAMPLES cases of one operation in one generation mode, sent with one identity's token."""

    poison_left = [POISONED_CASES if mode is schemathesis.GenerationMode.POSITIVE else 0]

    def send(case: Any, what: str) -> None:
        response = case.call(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=REQUEST_TIMEOUT
        )
        result.cases += 1
        result.statuses[response.status_code] = result.statuses.get(response.status_code, 0) + 1
        if response.status_code >= 500 and len(result.failures) < 50:
            result.failures.append(
                f"{operation.label} as {who} ({what}): {response.status_code} "
                f"{response.text[:200]!r}\n    {case.as_curl_command()}"
            )

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
        send(case, mode.value)
        if poison_left[0] <= 0:
            return
        poison_left[0] -= 1
        body, path_parameters = case.body, dict(case.path_parameters or {})
        try:
            for leaf in string_leaves(body) if isinstance(body, dict | list) else []:
                case.body = poisoned(body, leaf)
                send(case, f"NUL in body {'.'.join(map(str, leaf))}")
            case.body = body
            for name, value in path_parameters.items():
                if isinstance(value, str):
                    case.path_parameters = {**path_parameters, name: poisoned(value, ())}
                    send(case, f"NUL in path {name}")
        finally:
            case.body, case.path_parameters = body, path_parameters

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
