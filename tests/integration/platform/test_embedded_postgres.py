"""The embedded PostgreSQL keeps its data across restarts and recovers from a killed earlier run."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import psutil
import pytest

from sandwich.platform.embedded.postgres import EmbeddedPostgres, EmbeddedPostgresError

pytestmark = pytest.mark.integration


async def _scalar(url: str, query: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def _execute(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _gone(pid: int) -> bool:
    """Dead or a zombie (an orphan's zombie waits for the machine's init to reap it)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_data_survives_stop_and_start(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path)
    pg.start()
    try:
        first_url = pg.url
        assert first_url.startswith("postgresql://postgres@127.0.0.1:")
        assert pg.pid is not None
        await _execute(
            pg.url,
            "CREATE TABLE ledger (id int PRIMARY KEY, amount bigint NOT NULL)",
            "INSERT INTO ledger VALUES (1, 500000), (2, -34900)",
        )
        assert await _scalar(pg.url, "SHOW max_connections") == "800"
        assert await _scalar(pg.url, "SHOW fsync") == "on"
        assert await _scalar(pg.url, "SHOW synchronous_commit") == "on"
        assert await _scalar(pg.url, "SELECT upper('сэндвич')") == "СЭНДВИЧ"

        pg.stop()
        assert pg.pid is None

        pg.start()
        assert pg.url == first_url, "a restart keeps the port, so configured clients reconnect"
        assert await _scalar(pg.url, "SELECT sum(amount) FROM ledger") == 500000 - 34900
    finally:
        pg.stop()


async def test_a_new_object_on_the_same_data_dir_finds_the_data(tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path) as pg:
        await _execute(pg.url, "CREATE TABLE t (x int)", "INSERT INTO t VALUES (42)")
    with EmbeddedPostgres(tmp_path) as pg:
        assert await _scalar(pg.url, "SELECT x FROM t") == 42


async def test_recovers_after_the_server_was_killed(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path)
    pg.start()
    await _execute(pg.url, "CREATE TABLE t (x int)", "INSERT INTO t VALUES (7)")
    pid = pg.pid
    assert pid is not None
    # A crash: the postmaster and its backends die, postmaster.pid stays behind.
    children = psutil.Process(pid).children(recursive=True)
    os.kill(pid, signal.SIGKILL)
    for child in children:
        child.kill()
    deadline = time.monotonic() + 5
    while not all(_gone(p) for p in (pid, *(c.pid for c in children))):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert (tmp_path / "postgres" / "postmaster.pid").exists()

    assert pg.pid is None
    pg.start()
    try:
        assert pg.pid not in (None, pid)
        assert await _scalar(pg.url, "SELECT x FROM t") == 7, "committed data survives a crash"
    finally:
        pg.stop()


ORPHAN_SCRIPT = """
import os, sys, threading
from pathlib import Path
from sandwich.platform.embedded.postgres import EmbeddedPostgres, EmbeddedPostgresError

pg = EmbeddedPostgres(Path(sys.argv[1]))
# Started from a worker thread, the server is not tied to this process's death: the way a server
# outlives a supervisor that was killed at a bad moment.
worker = threading.Thread(target=pg.start)
worker.start()
worker.join()
print(pg.pid, flush=True)
os._exit(0)  # no stop(), no atexit
"""


async def test_takes_over_from_an_orphaned_server(tmp_path: Path) -> None:
    """A server left running by a process that died is shut down and replaced by the next start."""
    with EmbeddedPostgres(tmp_path) as pg:
        await _execute(pg.url, "CREATE TABLE t (x int)", "INSERT INTO t VALUES (1)")
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", ORPHAN_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    orphan_pid = int(done.stdout.split()[-1])
    assert psutil.pid_exists(orphan_pid), "the orphan outlived its parent"

    successor = EmbeddedPostgres(tmp_path)
    successor.start()
    try:
        assert successor.pid != orphan_pid
        assert _gone(orphan_pid)
        assert await _scalar(successor.url, "SELECT count(*) FROM t") == 1
    finally:
        successor.stop()


async def test_refuses_a_cluster_another_live_owner_runs(tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path):
        with pytest.raises(EmbeddedPostgresError, match="run by another process"):
            EmbeddedPostgres(tmp_path).start()


async def test_long_data_dir_puts_the_socket_elsewhere(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with EmbeddedPostgres(deep) as pg:
        assert pg.socket_dir is not None
        assert len(str(pg.socket_dir / ".s.PGSQL.65535.lock")) <= 107
        assert await _scalar(pg.url, "SELECT 1") == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL under another account")
async def test_starts_after_a_parent_directory_was_tightened(tmp_path: Path) -> None:
    """pytest chmods /tmp/pytest-of-root to 0700 whenever a session starts; the server's account
    must get through again on the next start."""
    data_dir = tmp_path / "nested" / "data"
    with EmbeddedPostgres(data_dir) as pg:
        await _execute(pg.url, "CREATE TABLE t (x int)", "INSERT INTO t VALUES (3)")
    (tmp_path / "nested").chmod(0o700)
    with EmbeddedPostgres(data_dir) as pg:
        assert await _scalar(pg.url, "SELECT x FROM t") == 3


async def test_every_connection_needs_the_password_over_tcp_and_the_socket(tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path) as pg:
        assert await _scalar(pg.url, "SELECT current_user") == "postgres"
        assert "passfile=" in pg.url and pg.passfile.read_text() not in pg.url
        assert stat.S_IMODE(pg.passfile.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700
        no_password = tmp_path / "empty.pgpass"
        no_password.write_text("")
        no_password.chmod(0o600)
        tcp = f"postgresql://postgres@127.0.0.1:{pg.port}/postgres?sslmode=disable"
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(tcp, passfile=str(no_password))
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(tcp, password="not-the-password")
        assert pg.socket_dir is not None
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(
                host=str(pg.socket_dir),
                port=pg.port,
                user="postgres",
                database="postgres",
                passfile=str(no_password),
            )


async def test_a_cluster_that_trusted_local_connections_asks_for_a_password_from_its_next_start(
    tmp_path: Path,
) -> None:
    with EmbeddedPostgres(tmp_path) as pg:
        await _execute(pg.url, "CREATE TABLE kept (x int)", "INSERT INTO kept VALUES (7)")
        port = pg.port
    # What a data directory of an earlier version looks like: trust for everyone, no password file.
    (tmp_path / "postgres" / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 127.0.0.1/32 trust\n"
    )
    pg.passfile.unlink()
    with EmbeddedPostgres(tmp_path, port=port) as pg:
        assert await _scalar(pg.url, "SELECT x FROM kept") == 7
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(
                f"postgresql://postgres@127.0.0.1:{pg.port}/postgres?sslmode=disable", password=""
            )


def test_a_lost_superuser_password_file_is_named_in_the_error(tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path) as pg:
        passfile = pg.passfile
    passfile.unlink()
    with pytest.raises(EmbeddedPostgresError, match="password file"):
        EmbeddedPostgres(tmp_path).start()
