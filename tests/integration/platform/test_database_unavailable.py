"""A service whose database cannot be reached answers 503 `database_unavailable` in the contract's
error shape, with Retry-After, instead of a 500: at the start of a request (nothing listens) and
in the middle of one (its backend is terminated under it)."""

from __future__ import annotations

import socket

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from sandwich.platform.db import Database, DatabaseUnavailable, plain_url
from sandwich.platform.errors import install_error_handlers
from sandwich.platform.settings import Settings
from tests.integration.scratch import scratch_database, server_url

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: nothing listens there


def _app(db: Database) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/lose")
    async def lose() -> dict[str, int]:  # its backend is terminated by its own first statement
        async with db.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"), {})
            return {"n": (await conn.execute(text("SELECT 1"))).scalar_one()}

    @app.get("/one")
    async def one() -> dict[str, int]:
        async with db.connect() as conn:
            return {"n": (await conn.execute(text("SELECT 1"))).scalar_one()}

    return app


async def _get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        return await client.get(path)


async def test_a_database_nobody_listens_for_is_503_database_unavailable() -> None:
    settings = Settings(database_url=f"postgresql://postgres@127.0.0.1:{_closed_port()}/postgres")
    db = Database(settings, "nowhere")
    try:
        with pytest.raises(DatabaseUnavailable):
            async with db.connect():
                pass
        answer = await _get(_app(db), "/one")
    finally:
        await db.close()
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["error"]["code"] == "database_unavailable"


async def test_a_connection_lost_in_the_middle_of_a_request_is_503_and_the_next_one_works() -> None:
    async with scratch_database("lost", pool_size=2, max_overflow=0) as db:
        app = _app(db)
        lost = await _get(app, "/lose")
        fine = await _get(app, "/one")
        admin = await asyncpg.connect(plain_url(server_url(), "postgres"))
        try:
            sessions = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", db.name
            )
        finally:
            await admin.close()
    assert lost.status_code == 503, lost.text
    assert lost.json()["error"]["code"] == "database_unavailable"
    assert fine.status_code == 200 and fine.json() == {"n": 1}
    assert sessions == 1  # the lost connection was not handed to the next request
