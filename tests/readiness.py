"""Waiting for a process the tests started to answer its readiness path."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import httpx


def wait_until_ready(
    url: str,
    process: subprocess.Popen[bytes],
    *,
    seconds: float,
    what: str,
    log: Callable[[], str] = lambda: "",
    interval: float = 0.1,
) -> None:
    """Until GET `url` answers 200; AssertionError (with the log's tail) if `process` exits first or
    `seconds` pass."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited on start:\n{log()}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} was not ready within {seconds:g}s:\n{log()}")
        time.sleep(interval)
