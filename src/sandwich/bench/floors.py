"""Floors: what the same work costs without the platform around it, measured in the same run.

1. `database_floor`: one process, asyncpg straight on the platform's PostgreSQL (a scratch database
   of its own, dropped afterwards), per order one transaction inserting an order row, a ledger row
   and an outbox row, `concurrency` transactions at a time: orders/s with no network hop but the
   database's own.
2. `http_floor`: a tiny FastAPI app (one GET route answering a small JSON document, like
   /health/live) served by uvicorn (uvloop + httptools, as the services are) in a second process,
   called through one aiohttp session with 64 requests in flight, against the same app called
   in-process through ASGI (the direct call: the same handling, no socket): req/s of each.
3. the platform's own hop: GET /health/live of a real service through one aiohttp session, with
   its middleware, for the same client; measured interleaved with (2), the best of a few rounds each.
4. `machine_floor`: what the machine itself charges, to tell one host from another when reports
   are compared: a pure-Python loop (the interpreter's speed) and a one-byte round trip over
   loopback TCP between two processes, one at a time (the cost of waking the process at the other
   end, which every hop, statement and event of an order pays; on a VM it can be most of a hop).

`python -m sandwich.bench.floors serve PORT` is the second process of (2), `... echo PORT` of (4).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Iterable
from typing import Any

import orjson

from sandwich.bench.stats import percentiles
from sandwich.platform.ports import free_port

HOP_CONCURRENCY = 64


# -- 1. the database work of one order -------------------------------------------------------------

_SCHEMA = """
CREATE TABLE orders (
    order_id UUID PRIMARY KEY, user_id UUID NOT NULL, username TEXT NOT NULL, status TEXT NOT NULL,
    items JSONB NOT NULL, total BIGINT NOT NULL, delivery JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX orders_by_user ON orders (user_id, created_at DESC);
CREATE TABLE ledger (
    operation_id UUID PRIMARY KEY, user_id UUID NOT NULL, kind TEXT NOT NULL, amount BIGINT NOT NULL,
    balance_after BIGINT NOT NULL, order_id UUID, idempotency_key TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ledger_by_user ON ledger (user_id, created_at DESC);
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY, event_id UUID NOT NULL UNIQUE, topic TEXT NOT NULL, key TEXT NOT NULL,
    envelope BYTEA NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    published_at TIMESTAMPTZ, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT
);
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;
"""


def _envelope(order_id: str, user_id: str) -> bytes:
    """About the size and shape of a real OrderEvent envelope."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    return orjson.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "type": "OrderEvent",
            "occurred_at": now,
            "producer": "orders",
            "key": order_id,
            "version": 2,
            "schema_version": 1,
            "trace": {"traceparent": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"},
            "payload": {
                "status": "paid",
                "previous_status": "created",
                "at": now,
                "order": {
                    "order_id": order_id,
                    "user_id": user_id,
                    "username": "bench-floor",
                    "status": "paid",
                    "items": [
                        {
                            "menu_item_id": str(uuid.uuid4()),
                            "name": "Bench sandwich",
                            "quantity": 1,
                            "price": 100,
                        }
                    ],
                    "total": 100,
                    "delivery": {"address": "Tverskaya 1", "lat": 55.757, "lon": 37.615},
                    "payment_operation_id": str(uuid.uuid4()),
                    "created_at": now,
                    "updated_at": now,
                },
            },
        }
    )


async def database_floor(server_url: str, *, duration: float = 5.0, concurrency: int = 32) -> dict[str, Any]:
    """Orders/s of the bare database work of one order on the platform's PostgreSQL server."""
    import asyncpg

    from sandwich.platform.db import plain_url

    name = f"bench_floor_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(plain_url(server_url, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    pool: Any = None
    try:
        pool = await asyncpg.create_pool(
            plain_url(server_url, name), min_size=concurrency, max_size=concurrency
        )
        async with pool.acquire() as conn:
            await conn.execute(_SCHEMA)
        latencies: list[float] = []
        done = 0
        deadline = time.monotonic() + duration

        async def worker() -> None:
            nonlocal done
            user_id = str(uuid.uuid4())
            items = orjson.dumps(
                [{"menu_item_id": str(uuid.uuid4()), "name": "Bench sandwich", "quantity": 1, "price": 100}]
            ).decode()
            delivery = orjson.dumps({"address": "Tverskaya 1", "lat": 55.757, "lon": 37.615}).decode()
            while time.monotonic() < deadline:
                began = time.perf_counter()
                order_id = str(uuid.uuid4())
                async with pool.acquire() as conn, conn.transaction():
                    await conn.execute(
                        "INSERT INTO orders VALUES ($1, $2, 'bench-floor', 'paid', $3::jsonb, 100, $4::jsonb, now(), now())",
                        uuid.UUID(order_id),
                        uuid.UUID(user_id),
                        items,
                        delivery,
                    )
                    await conn.execute(
                        "INSERT INTO ledger (operation_id, user_id, kind, amount, balance_after, order_id, "
                        "idempotency_key) VALUES ($1, $2, 'payment', 100, 0, $3, $4)",
                        uuid.uuid4(),
                        uuid.UUID(user_id),
                        uuid.UUID(order_id),
                        f"order-{order_id}",
                    )
                    await conn.execute(
                        "INSERT INTO outbox (event_id, topic, key, envelope) VALUES ($1, 'order.events', $2, $3)",
                        uuid.uuid4(),
                        order_id,
                        _envelope(order_id, user_id),
                    )
                latencies.append(time.perf_counter() - began)
                done += 1

        began = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - began
    finally:
        if pool is not None:
            await pool.close()
        admin = await asyncpg.connect(plain_url(server_url, "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
    return {
        "what": "order row + ledger row + outbox row in one transaction, asyncpg, one process",
        "concurrency": concurrency,
        "duration_s": round(elapsed, 2),
        "orders": done,
        "orders_per_s": round(done / elapsed, 1),
        "latency": percentiles(latencies),
    }


# -- 2. one bare HTTP hop --------------------------------------------------------------------------


def tiny_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def _hammer_http(url: str, duration: float, concurrency: int = HOP_CONCURRENCY) -> dict[str, Any]:
    """Requests/s of GET `url` through one aiohttp session with `concurrency` in flight."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=30)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.monotonic() + duration

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                began = time.perf_counter()
                try:
                    async with session.get(url) as answer:
                        await answer.read()
                        if answer.status != 200:
                            errors += 1
                            continue
                except aiohttp.ClientError:
                    errors += 1
                    await asyncio.sleep(0.01)
                    continue
                latencies.append(time.perf_counter() - began)

        elapsed = await _timed(worker() for _ in range(concurrency))
    return _calls(concurrency, elapsed, latencies, errors)


async def _hammer_direct(app: Any, duration: float, concurrency: int = HOP_CONCURRENCY) -> dict[str, Any]:
    """Calls/s of the same app through ASGI in this process: the same handling, no socket."""
    latencies: list[float] = []
    deadline = time.monotonic() + duration
    scope_template = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/ping",
        "raw_path": b"/ping",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def worker() -> None:
        while time.monotonic() < deadline:
            began = time.perf_counter()
            status: list[int] = []

            async def send(message: dict[str, Any], status: list[int] = status) -> None:
                if message["type"] == "http.response.start":
                    status.append(message["status"])

            await app(dict(scope_template), receive, send)
            latencies.append(time.perf_counter() - began)

    elapsed = await _timed(worker() for _ in range(concurrency))
    return _calls(concurrency, elapsed, latencies)


async def _second_process(command: str, port: int) -> asyncio.subprocess.Process:
    """`python -m sandwich.bench.floors COMMAND PORT`: the other end of a floor."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandwich.bench.floors",
        command,
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        stdin=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def _wait_listening(port: int, proc: asyncio.subprocess.Process, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"the floor's second process exited with code {proc.returncode}")
        with contextlib.suppress(OSError):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the floor's second process did not listen in time")


async def http_floor(
    *, duration: float = 4.0, platform_url: str | None = None, rounds: int = 3
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The bare hop (uvicorn in a second process, aiohttp client), the direct in-process call and,
    when `platform_url` is given, the platform's own hop (GET /health/live of a running service).

    Measured in `rounds` interleaved rounds of `duration / rounds` seconds each, keeping each one's
    best: what else the machine is doing comes and goes, and interleaving exposes the three to the
    same spells of it, so their ratios are not one quiet moment against a busy one.
    """
    port = free_port()
    proc = await _second_process("serve", port)
    app = tiny_app()
    bare_url = f"http://127.0.0.1:{port}/ping"
    platform = f"{platform_url.rstrip('/')}/health/live" if platform_url else None
    best: dict[str, dict[str, Any]] = {}

    def keep(name: str, result: dict[str, Any]) -> None:
        if name not in best or result["requests_per_s"] > best[name]["requests_per_s"]:
            best[name] = result

    try:
        await _wait_listening(port, proc)
        each = max(0.5, duration / rounds)
        await _hammer_http(bare_url, min(1.0, each / 2))  # warm up
        await _hammer_direct(app, min(1.0, each / 2))
        if platform:
            await _hammer_http(platform, min(1.0, each / 2))
        for _ in range(rounds):
            keep("hop", await _hammer_http(bare_url, each))
            keep("direct", await _hammer_direct(app, each))
            if platform:
                keep("platform", await _hammer_http(platform, each))
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    hop, direct = best["hop"], best["direct"]
    http = {
        "what": "FastAPI GET route: uvicorn (uvloop, httptools) in a 2nd process + one aiohttp session, vs ASGI "
        f"in-process; best of {rounds} interleaved rounds",
        "hop": hop,
        "direct": direct,
        "hop_to_direct": round(hop["requests_per_s"] / direct["requests_per_s"], 3)
        if direct["requests_per_s"]
        else None,
    }
    own = {**best["platform"], "url": platform} if platform else None
    return http, own


# -- 4. the machine ---------------------------------------------------------------------------------

ROUND_TRIPS = 3000
PYTHON_LOOP = 5_000_000


def echo(port: int) -> None:
    """Answer every byte with itself, one connection after another, until terminated."""
    with socket.create_server(("127.0.0.1", port)) as server:
        while True:
            conn, _ = server.accept()
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while data := conn.recv(64):
                    conn.sendall(data)


def _python_loop_seconds() -> float:
    began = time.perf_counter()
    for _ in range(PYTHON_LOOP):
        pass
    return time.perf_counter() - began


def _round_trips(port: int) -> list[float]:
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times: list[float] = []
        for _ in range(ROUND_TRIPS):
            began = time.perf_counter()
            conn.sendall(b"x")
            if not conn.recv(64):
                raise RuntimeError("the echo process closed the connection")
            times.append(time.perf_counter() - began)
    return times


async def machine_floor() -> dict[str, Any]:
    """The interpreter's speed and the loopback round trip (see the module's doc); the timed loops
    run in a thread, off the event loop."""
    port = free_port()
    proc = await _second_process("echo", port)
    try:
        loop_s = min([await asyncio.to_thread(_python_loop_seconds) for _ in range(3)])
        await _wait_listening(port, proc)
        trips = await asyncio.to_thread(_round_trips, port)
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
    latency = percentiles(trips)
    return {
        "what": f"pure-Python loop of {PYTHON_LOOP:,} iterations (best of 3); {ROUND_TRIPS} one-byte round "
        "trips over loopback TCP to a second process, one at a time",
        "python_loop_iterations": PYTHON_LOOP,
        "python_loop_s": round(loop_s, 3),
        "round_trip": latency,
        "round_trips_per_s": round(len(trips) / sum(trips), 1),
    }


def serve(port: int) -> None:
    import uvicorn

    uvicorn.run(
        tiny_app(),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=75,
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "echo":
        echo(int(sys.argv[2]))
    else:
        print("usage: python -m sandwich.bench.floors serve|echo PORT", file=sys.stderr)
        sys.exit(2)


async def _timed(workers: Iterable[Awaitable[None]]) -> float:
    """Seconds the workers took, run together."""
    began = time.monotonic()
    await asyncio.gather(*workers)
    return time.monotonic() - began


def _calls(
    concurrency: int, elapsed: float, latencies: list[float], errors: int | None = None
) -> dict[str, Any]:
    """The figures of a floor of calls (`errors` where failures are counted)."""
    figures: dict[str, Any] = {
        "concurrency": concurrency,
        "duration_s": round(elapsed, 2),
        "requests": len(latencies),
    }
    if errors is not None:
        figures["errors"] = errors
    figures["requests_per_s"] = round(len(latencies) / elapsed, 1)
    figures["latency"] = percentiles(latencies)
    return figures
