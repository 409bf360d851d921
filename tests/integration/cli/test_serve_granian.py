"""`sandwich serve` under granian (SANDWICH_ASGI_SERVER=granian): a real service on real PostgreSQL,
and a SIGTERM that meets a request which never ends by itself (a follower's event stream)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from sandwich.cli.serve import GRACEFUL_SHUTDOWN_SECONDS
from sandwich.platform.db import Database, plain_url
from sandwich.platform.ports import free_port
from sandwich.platform.service_auth import CALLER_HEADER
from sandwich.platform.settings import Settings
from tests.credentials import keys_of
from tests.integration.scratch import server_url

pytestmark = pytest.mark.integration


def _wait_answer(url: str, proc: subprocess.Popen[str], timeout: float = 40.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"the server exited with {proc.returncode}:\n{output[-3000:]}")
        try:
            return httpx.get(url, timeout=2.0)
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"no answer from {url} within {timeout} s")


def _stopped(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)


@pytest.fixture
def menu_database_prefix() -> Iterator[str]:
    """A database prefix of the test's own; the service creates its database, the test drops it."""
    prefix = f"it_{uuid.uuid4().hex[:12]}"
    yield prefix
    name = Database(Settings(database_url=server_url(), db_prefix=prefix), "menu").name

    async def drop() -> None:
        admin = await asyncpg.connect(plain_url(server_url(), "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(drop())


def test_a_service_serves_under_granian_and_stops_on_sigterm(
    tmp_path: Path, menu_database_prefix: str
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "SANDWICH_ASGI_SERVER": "granian",
        "SANDWICH_FLOW": "sync",
        "DATABASE_URL": server_url(),
        "SANDWICH_DB_PREFIX": menu_database_prefix,
        "SANDWICH_DATA_DIR": str(tmp_path),
    }
    env.pop("SANDWICH_SUPERVISOR_PID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandwich.cli.serve", "menu", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ready = _wait_answer(f"http://127.0.0.1:{port}/health/ready", proc)
        assert ready.status_code == 200, ready.text
        assert ready.headers["server"] == "granian"
        assert ready.json()["checks"]["database"] is True  # the lifespan ran: migrated, pool open
        anonymous = httpx.get(f"http://127.0.0.1:{port}/api/v1/menu", timeout=5.0)
        assert anonymous.status_code == 401  # behind the gateway: only services that prove who they are
        as_gateway = {CALLER_HEADER: keys_of("gateway").caller_token("menu")}
        menu = httpx.get(f"http://127.0.0.1:{port}/api/v1/menu", headers=as_gateway, timeout=5.0)
        assert menu.status_code == 200 and isinstance(menu.json()["items"], list)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        _stopped(proc)


ENDLESS_STREAM_SERVER = textwrap.dedent(
    """
    import asyncio, sys
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route
    from sandwich.cli.serve import _serve_granian
    from sandwich.platform.settings import Settings

    async def ticks():
        while True:
            yield b": keep-alive\\n\\n"
            await asyncio.sleep(0.2)

    async def events(request):
        return StreamingResponse(ticks(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/events", events)])
    sys.exit(_serve_granian(app, Settings(host="127.0.0.1", port=int(sys.argv[1])), False))
    """
)


def test_sigterm_ends_a_stream_after_the_grace_and_exits() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", ENDLESS_STREAM_SERVER, str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_answer(f"http://127.0.0.1:{port}/missing", proc)
        with httpx.stream("GET", f"http://127.0.0.1:{port}/events", timeout=30.0) as stream:
            chunks = stream.iter_bytes()
            assert next(chunks).startswith(b": keep-alive")
            began = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(httpx.RemoteProtocolError):  # cut mid-stream is an end too
                for _ in chunks:  # the stream goes on through the grace, then ends
                    pass
            ended = time.monotonic() - began
        assert proc.wait(timeout=10) == 0
        assert GRACEFUL_SHUTDOWN_SECONDS - 0.5 <= ended <= GRACEFUL_SHUTDOWN_SECONDS + 3.0
        assert "requests_cancelled_at_shutdown" in (proc.stdout.read() if proc.stdout else "")
    finally:
        _stopped(proc)
