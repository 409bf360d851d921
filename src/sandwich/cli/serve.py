"""`sandwich serve SERVICE`: one service (or the mail sink) in the foreground, configured by the
environment: what `sandwich up` runs for each service, and what a container runs.

Run as `python -m sandwich.cli.serve SERVICE [--port P] [--dir D]` by the supervisor. This module
imports neither rich nor the rest of the CLI: structlog loads rich (and pygments) whenever it can
import it, about 5 MB in every service process for pretty tracebacks nobody sees in a log file.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandwich.platform.supervised import SUPERVISOR_PID_ENV

if TYPE_CHECKING:
    from sandwich.platform.settings import Settings

MAILSINK = "mailsink"

LISTEN_BACKLOG = 2048
"""Pending connections the listening socket holds (uvicorn's default, used for both servers)."""

GRACEFUL_SHUTDOWN_SECONDS = 5.0
"""After SIGTERM, requests still running this long are cancelled (a follower's event stream never
ends by itself), then the app's lifespan shutdown runs: uvicorn's timeout_graceful_shutdown."""


def serve(service: str, port: int | None = None, directory: Path | None = None) -> int:
    from sandwich.platform.settings import SERVICES

    name = service.replace("-", "_")
    if name not in (*SERVICES, MAILSINK):
        print(f"unknown service {service!r}; one of: {', '.join((*SERVICES, MAILSINK))}", file=sys.stderr)
        return 2
    _exit_with_supervisor()
    if name == MAILSINK:
        return serve_mailsink(port, directory)
    return serve_service(name, port)


def serve_service(name: str, port: int | None = None) -> int:
    """Run `sandwich.services.<name>.app:create_app()` under the ASGI server the settings name
    (SANDWICH_ASGI_SERVER: uvicorn with uvloop + httptools, or granian embedded on uvloop)."""
    # Settings are read from the environment once, on first use: set ours before that happens.
    os.environ["SANDWICH_SERVICE"] = name
    if port is not None:
        os.environ["SANDWICH_PORT"] = str(port)
    from sandwich.platform.settings import AsgiServer, get_settings

    settings = get_settings()
    module = importlib.import_module(f"sandwich.services.{name}.app")
    app = module.create_app()
    # Only the gateway may sit behind a proxy of the operator's (SANDWICH_TRUSTED_PROXIES): the
    # client is then the right-most X-Forwarded-For address that is not one of those proxies.
    # Without trusted proxies the client is the connection's peer, whatever it sends.
    behind_proxy = trusted_proxies(settings) if name == "gateway" else []
    if settings.asgi_server is AsgiServer.GRANIAN:
        return _serve_granian(app, settings, behind_proxy)
    return _serve_uvicorn(app, settings, behind_proxy)


def trusted_proxies(settings: Settings) -> list[str]:
    """SANDWICH_TRUSTED_PROXIES as a list of addresses and CIDRs (uvicorn's forwarded_allow_ips)."""
    return [item.strip() for item in settings.trusted_proxies.split(",") if item.strip()]


def _serve_uvicorn(app: Any, settings: Settings, behind_proxy: list[str]) -> int:
    import uvicorn

    from sandwich.cli.deadlines import DeadlineHttpToolsProtocol

    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        # httptools, with deadlines on reading a request's head and body (a slow client is cut off).
        http=DeadlineHttpToolsProtocol,
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=bool(behind_proxy),
        forwarded_allow_ips=behind_proxy or None,
        lifespan="on",
        # Longer than the callers' pooled keep-alive (15 s, platform/http.py): a caller must never
        # reuse a connection the server is closing at that moment.
        timeout_keep_alive=75,
        timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_SECONDS),
        backlog=LISTEN_BACKLOG,
    )
    return 0


class InFlightRequests:
    """ASGI middleware that knows the tasks serving HTTP requests, so that a shutdown can cancel
    the ones still running after the grace period; granian's server has no such timeout and waited
    for an open event stream (up to 10 minutes, until its order ended) before the app could stop."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.tasks: set[asyncio.Task[Any]] = set()
        self.cancelled = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        task = asyncio.current_task() if scope["type"] == "http" else None
        if task is None:
            await self.app(scope, receive, send)
            return
        self.tasks.add(task)
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            if not self.cancelled:
                raise
            # Ended by the shutdown, as planned: not an error of the app's for the server to log.
        finally:
            self.tasks.discard(task)

    def cancel(self) -> int:
        """Cancel the requests under way; how many there were."""
        self.cancelled = True
        for task in self.tasks:
            task.cancel()
        return len(self.tasks)


def _serve_granian(app: Any, settings: Settings, behind_proxy: list[str]) -> int:
    """granian's embedded server, in this process and on its uvloop, one Rust runtime thread.

    Not granian's usual master and worker processes: a service must stay one process, which the
    supervisor stops, the benchmark measures and its faults kill. SIGTERM and SIGINT stop it the
    way they stop uvicorn: no new connections, GRACEFUL_SHUTDOWN_SECONDS for the requests under
    way, then the app's lifespan shutdown. Exits 1 when the app did not start (its lifespan
    startup raised), as uvicorn exits 3.
    """
    import structlog
    import uvloop
    from granian.constants import HTTPModes, Interfaces
    from granian.log import LogLevels
    from granian.server.embed import Server

    if behind_proxy:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app = ProxyHeadersMiddleware(app, trusted_hosts=behind_proxy)  # what uvicorn's proxy_headers does
    from granian.http import HTTP1Settings

    from sandwich.cli.deadlines import HEAD_SECONDS, BodyDeadline

    in_flight = InFlightRequests(BodyDeadline(app))
    level = settings.log_level.lower()
    server = Server(
        in_flight,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(header_read_timeout=int(HEAD_SECONDS * 1000)),
        websockets=False,
        runtime_threads=1,
        backlog=LISTEN_BACKLOG,
        log_level=LogLevels(level) if level in LogLevels.__members__ else LogLevels.warning,
    )

    async def main() -> int:
        stop_requested = asyncio.Event()

        def request_stop() -> None:
            server.stop()
            stop_requested.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, request_stop)
        serving = asyncio.ensure_future(server.serve())
        stopping = asyncio.ensure_future(stop_requested.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not serving.done():
            await asyncio.wait({serving}, timeout=GRACEFUL_SHUTDOWN_SECONDS)
            if not serving.done():
                cancelled = in_flight.cancel()
                structlog.get_logger("serve").warning("requests_cancelled_at_shutdown", count=cancelled)
        await serving
        return 1 if server.interrupt_children else 0

    return uvloop.run(main())


def serve_mailsink(port: int | None = None, directory: Path | None = None) -> int:
    from sandwich.platform.embedded.mailsink import run_mailsink
    from sandwich.platform.settings import Settings

    settings = Settings()
    mail_dir = directory if directory is not None else settings.data_dir / "mail"
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.WARNING), stream=sys.stderr
    )
    run_mailsink(settings.smtp_host, port if port is not None else settings.smtp_port, mail_dir)
    return 0


def _exit_with_supervisor() -> None:
    """When started by `sandwich up`, exit if the supervisor disappears (killed with SIGKILL, so it
    could not stop us): an orphaned service would keep its port and the database busy forever."""
    raw = os.environ.get(SUPERVISOR_PID_ENV)
    if not raw or not raw.isdigit():
        return
    supervisor = int(raw)

    def orphaned() -> bool:
        return os.getppid() != supervisor

    if orphaned():
        sys.exit(1)

    def watch() -> None:
        while not orphaned():
            time.sleep(1.0)
        print(f"supervisor (pid {supervisor}) is gone; shutting down", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(15.0)
        os._exit(1)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sandwich serve")
    parser.add_argument("service")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args(argv)
    return serve(args.service, args.port, args.dir)


if __name__ == "__main__":
    # Before structlog is imported: without rich it renders plain tracebacks (a documented fallback).
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
    sys.exit(main())
