"""`sandwich serve SERVICE`: one service (or the mail sink) in the foreground, configured by the
environment: what `sandwich up` runs for each service, and what a container runs.

Run as `python -m sandwich.cli.serve SERVICE [--port P] [--dir D]` by the supervisor. This module
imports neither rich nor the rest of the CLI: structlog loads rich (and pygments) whenever it can
import it, about 5 MB in every service process for pretty tracebacks nobody sees in a log file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

MAILSINK = "mailsink"
SUPERVISOR_PID_ENV = "SANDWICH_SUPERVISOR_PID"
"""Set by the supervisor in every child: `serve` exits when that process is no longer its parent."""


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
    """Run `sandwich.services.<name>.app:create_app()` under uvicorn (uvloop + httptools)."""
    import uvicorn

    # Settings are read from the environment once, on first use: set ours before that happens.
    os.environ["SANDWICH_SERVICE"] = name
    if port is not None:
        os.environ["SANDWICH_PORT"] = str(port)
    from sandwich.platform.settings import get_settings

    settings = get_settings()
    module = importlib.import_module(f"sandwich.services.{name}.app")
    app = module.create_app()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level.lower(),
        access_log=False,
        # Only the gateway may sit behind a proxy of the operator's; the services behind it have no
        # X-Forwarded-* to interpret on every request.
        proxy_headers=name == "gateway",
        lifespan="on",
        # Longer than the callers' pooled keep-alive (15 s, platform/http.py): a caller must never
        # reuse a connection the server is closing at that moment.
        timeout_keep_alive=75,
        timeout_graceful_shutdown=5,
    )
    return 0


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
