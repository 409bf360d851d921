"""A gateway process of its own (`sandwich serve gateway`, as `up` runs it) in front of a stand-in
app served in this process: for the gateway's own behaviour (throttles, token checks) with limits
and failures the whole platform of the other end-to-end tests cannot be given."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from sandwich.platform.ports import free_port
from tests.readiness import wait_until_ready


@contextmanager
def gateway_before(
    stand_in: ASGIApp, *, behind: tuple[str, ...], env: Mapping[str, str], ready_path: str = "/health/ready"
) -> Iterator[str]:
    """The gateway's URL, with every service of `behind` answered by `stand_in`; `env` on top of this
    process's environment. Stopped (and the stand-in with it) when the block ends."""
    stand_in_port, gateway_port = free_port(), free_port()
    server = uvicorn.Server(uvicorn.Config(stand_in, host="127.0.0.1", port=stand_in_port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    stand_in_url = f"http://127.0.0.1:{stand_in_port}"
    child_env = {**os.environ, "SANDWICH_FLOW": "hybrid", **env}
    child_env.update({f"SANDWICH_URL_{service.upper()}": stand_in_url for service in behind})
    process = subprocess.Popen(
        [sys.executable, "-m", "sandwich.cli.serve", "gateway", "--port", str(gateway_port)], env=child_env
    )
    url = f"http://127.0.0.1:{gateway_port}"
    try:
        wait_until_ready(f"{url}{ready_path}", process, seconds=30, what="the gateway")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
        server.should_exit = True
        thread.join(timeout=5)
