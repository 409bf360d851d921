"""The geo edge (deploy/haproxy/haproxy.cfg) on real HAProxy in front of two regions, each a real
gateway process (tests/integration/deploy/conftest.py): clients go to the region of their network,
a stopped region's clients are served by the other one without an error page, and a client over
the rate limit gets 429 in the platform's error shape while others are served."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from tests.integration.deploy.conftest import (
    CLIENT_ELSEWHERE,
    CLIENT_OF_MOSCOW,
    CLIENT_OF_NOVOSIBIRSK,
    HAPROXY_CONFIG,
    LIVE_PATH,
    EdgeFiles,
    Regions,
    StartEdge,
    edge_environment,
)

pytestmark = pytest.mark.integration

UNLIMITED = 1_000_000
"""A rate limit no test reaches: for the tests about something else."""
RATE_LIMIT = 10
REGION_HEADER = "X-Sandwich-Region"
RATE_LIMITED_BODY = {"error": {"code": "too_many_requests", "message": "Too many requests from this client."}}
FAILOVER_SLACK_SECONDS = 3.0
"""On top of what the health checks take (inter * fall): HAProxy's 1 s turn-around before a retry,
and a loaded machine."""
STREAM_WORKERS = 3
AFTER_FAILOVER_SECONDS = 1.0
"""How long the stream keeps going once the other region answered: the steady state after failover."""


def _seconds(value: str) -> float:
    """An HAProxy time ("1s", "500ms", "2m"; a bare number is milliseconds) in seconds."""
    match = re.fullmatch(r"(\d+)(us|ms|s|m|h|d)?", value)
    assert match is not None, f"not an HAProxy time: {value!r}"
    number, unit = match.groups()
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}[unit or "ms"]
    return int(number) * scale


def failover_bound_seconds(config: str) -> float:
    """How long a stopped region may keep its clients, derived from the config's health checks: a
    server is out after `fall` failed checks `inter` apart (the refused connection of a client's
    request takes it out sooner), plus FAILOVER_SLACK_SECONDS."""
    line = next(line for line in config.splitlines() if line.strip().startswith("default-server"))
    inter = re.search(r"\binter (\S+)", line)
    fall = re.search(r"\bfall (\d+)", line)
    assert inter is not None and fall is not None, f"no inter/fall in {line!r}"
    return _seconds(inter[1]) * int(fall[1]) + FAILOVER_SLACK_SECONDS


@dataclass(frozen=True)
class Answer:
    """One request through the edge as the client saw it."""

    sent: float
    received: float
    status: int
    region: str | None
    body: str


async def ask(client: httpx.AsyncClient, path: str = LIVE_PATH) -> Answer:
    sent = time.monotonic()
    response = await client.get(path)
    return Answer(
        sent, time.monotonic(), response.status_code, response.headers.get(REGION_HEADER), response.text
    )


def test_the_configuration_is_valid_for_this_haproxy(haproxy: str, edge_files: EdgeFiles) -> None:
    """`haproxy -c` with a deployment's variables: no error and no warning (a warning is often a rule
    HAProxy ignores, e.g. an action in the wrong place)."""
    env = edge_environment(edge_files, ("10.1.0.10:80", "10.2.0.10:80"), 8443, 8080, RATE_LIMIT)
    check = subprocess.run(
        [haproxy, "-c", "-f", str(HAPROXY_CONFIG)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    output = check.stdout + check.stderr
    assert check.returncode == 0, output
    assert "WARNING" not in output and "ALERT" not in output, output


async def test_each_client_is_served_by_the_region_of_its_network(
    shared_regions: Regions, start_edge: StartEdge
) -> None:
    """The map sends 127.0.0.2 to moscow and 127.0.0.3 to novosibirsk; an address it does not hold
    goes to the default region (moscow). The header says so, and so do the gateways' own counts."""
    edge = start_edge(shared_regions, UNLIMITED)
    moscow_before = await shared_regions.moscow.live_answers()
    novosibirsk_before = await shared_regions.novosibirsk.live_answers()
    expected = {CLIENT_OF_MOSCOW: "moscow", CLIENT_OF_NOVOSIBIRSK: "novosibirsk", CLIENT_ELSEWHERE: "moscow"}
    for source, region in expected.items():
        async with edge.client(source) as client:
            for _ in range(3):
                answer = await ask(client)
                assert (answer.status, answer.region) == (200, region), (source, answer, edge.log())
                assert '"service":"gateway"' in answer.body.replace(" ", "")
    # The regions' own counts agree with the header: moscow served its client and the unmapped one.
    assert await shared_regions.moscow.live_answers() - moscow_before == 6
    assert await shared_regions.novosibirsk.live_answers() - novosibirsk_before == 3


async def test_the_gateway_sees_the_client_address_from_the_edge(
    shared_regions: Regions, start_edge: StartEdge
) -> None:
    """X-Forwarded-For reaches the gateway (which trusts the edge), replacing whatever the client
    claimed: the gateway forwards the client's address to auth, and the stand-in auth records it."""
    edge = start_edge(shared_regions, UNLIMITED)
    for source, region in (
        (CLIENT_OF_MOSCOW, shared_regions.moscow),
        (CLIENT_OF_NOVOSIBIRSK, shared_regions.novosibirsk),
    ):
        seen_before = len(region.auth.forwarded_for)
        async with edge.client(source) as client:
            response = await client.post(
                "/api/v1/auth/register",
                json={"username": f"edge-{region.name}", "password": "a long enough password"},
                headers={"X-Forwarded-For": "198.51.100.66"},
            )
        assert response.status_code == 201, (response.text, edge.log())
        assert response.headers[REGION_HEADER] == region.name
        assert region.auth.forwarded_for[seen_before:] == [source]


async def test_a_client_over_the_rate_limit_gets_429_while_others_are_served(
    shared_regions: Regions, start_edge: StartEdge
) -> None:
    """Over the limit: 429 in the platform's error shape, from the edge (the region never sees those
    requests), and from then on while the client keeps going; another client is still served.

    HAProxy's rate is a sliding estimate over two 10 s periods: a burst that straddles a period's
    end may be counted one short, so the limit may let one more request through."""
    edge = start_edge(shared_regions, RATE_LIMIT)
    moscow_before = await shared_regions.moscow.live_answers()
    started = time.monotonic()
    async with edge.client(CLIENT_OF_MOSCOW) as client:
        answers = [await client.get(LIVE_PATH) for _ in range(RATE_LIMIT + 4)]
    assert time.monotonic() - started < 10.0, "the burst must fit the limit's 10 s window"
    statuses = [answer.status_code for answer in answers]
    served = statuses.count(200)
    assert served in (RATE_LIMIT, RATE_LIMIT + 1), (statuses, edge.log())
    assert statuses == [200] * served + [429] * (len(answers) - served), statuses
    refused = answers[-1]
    assert refused.headers["content-type"] == "application/json"
    assert refused.json() == RATE_LIMITED_BODY
    assert int(refused.headers["retry-after"]) > 0
    assert await shared_regions.moscow.live_answers() - moscow_before == served
    async with edge.client(CLIENT_OF_NOVOSIBIRSK) as other:
        answer = await ask(other)
    assert (answer.status, answer.region) == (200, "novosibirsk")


async def test_clients_of_a_stopped_region_are_served_by_the_other_without_error_pages(
    own_regions: Regions, start_edge: StartEdge
) -> None:
    """moscow's gateway is stopped (SIGTERM) under a steady stream of its clients' requests: they are
    served by novosibirsk within the health checks' bound, and no request of the stream, before,
    during or after the stop, gets an error page (the ones that met the dying region are retried)."""
    edge = start_edge(own_regions, UNLIMITED)
    bound = failover_bound_seconds(HAPROXY_CONFIG.read_text(encoding="utf-8"))
    answers: list[Answer] = []
    stop_stream = asyncio.Event()
    async with edge.client(CLIENT_OF_MOSCOW) as client:
        stream = [
            asyncio.create_task(_keep_asking(client, answers, stop_stream)) for _ in range(STREAM_WORKERS)
        ]
        try:
            await _until(lambda: sum(a.region == "moscow" for a in answers) >= 5, 20.0, "moscow serves")
            stopped_at = time.monotonic()
            await asyncio.to_thread(own_regions.moscow.stop)
            await _until(lambda: _first_from(answers, "novosibirsk") is not None, bound + 5.0, "failover")
            failed_over = _first_from(answers, "novosibirsk")
            assert failed_over is not None
            await asyncio.sleep(AFTER_FAILOVER_SECONDS)
        finally:
            stop_stream.set()
            await asyncio.gather(*stream)
    failover_seconds = failed_over.received - stopped_at
    in_flight = [a for a in answers if a.sent <= stopped_at <= a.received]
    # A request that met the stopped region waits HAProxy's turn-around (1 s) before its retry.
    retried = [a for a in answers if a.sent >= stopped_at and a.received - a.sent >= 0.5]
    print(
        f"\nfailover after {failover_seconds:.2f} s (bound {bound:.1f} s); {len(answers)} requests, "
        f"statuses {_tally(answers)}; {len(in_flight)} in flight at the stop: {_tally(in_flight)}; "
        f"{len(retried)} sent after the stop answered in >= 0.5 s: {_tally(retried)}; "
        f"haproxy retried {_retried_in_log(edge.log_path.read_text(encoding='utf-8'))} on the other region; "
        f"slowest {max(a.received - a.sent for a in answers):.2f} s"
    )
    assert failover_seconds < bound, edge.log()
    # No HAProxy error page at any time: a request that met the dying region was sent to the other.
    assert {a.status for a in answers} == {200}, (_tally(answers), edge.log())
    after = [a for a in answers if a.sent >= failed_over.received]
    assert after and {a.region for a in after} == {"novosibirsk"}, _tally(after)
    # novosibirsk's own count: it really served every answer that says so.
    served = sum(a.region == "novosibirsk" for a in answers)
    assert await own_regions.novosibirsk.live_answers() == served
    async with httpx.AsyncClient(timeout=5.0) as plain:
        ready = await plain.get(f"{edge.plain_url}/health/ready")
    assert ready.status_code == 200, "one region up: the edge is still ready"


async def _keep_asking(client: httpx.AsyncClient, answers: list[Answer], stop: asyncio.Event) -> None:
    """One client of the stream: a request after the other until told to stop."""
    while not stop.is_set():
        answers.append(await ask(client))


async def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition()` every 20 ms; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout:.1f} s"
        await asyncio.sleep(0.02)


def _first_from(answers: list[Answer], region: str) -> Answer | None:
    return next((a for a in answers if a.region == region), None)


def _retried_in_log(log: str) -> int:
    """Requests HAProxy sent again to another server: its httplog's retries field, "+N" when the
    request was redispatched (the last field of actconn/feconn/beconn/srv_conn/retries)."""
    return len(re.findall(r" \d+/\d+/\d+/\d+/\+\d+ ", log))


def _tally(answers: list[Answer]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for answer in answers:
        key = f"{answer.status} {answer.region or '(edge)'}"
        counts[key] = counts.get(key, 0) + 1
    return counts
