"""`sandwich replay order_info`: rebuild the read model from the events the broker retains.

Where the platform runs is taken from `--data-dir` of a running `sandwich up` (its platform.json), or
from the environment (DATABASE_URL, NATS_URL or KAFKA_BOOTSTRAP_SERVERS, SANDWICH_DB_PREFIX,
SANDWICH_TOPIC_PREFIX), or, when neither names a database, from the default data directory. The
rebuild itself is `sandwich.services.order_info.replay.rebuild`; this module only wires it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from sandwich.platform.settings import Flow, Settings
from sandwich.supervisor import CONNECTION_FILE

if TYPE_CHECKING:
    from sandwich.services.order_info.replay import ReplayReport

REPLAYABLE = ("order_info",)


class ReplaySetupError(RuntimeError):
    """The platform to replay against could not be found or used; the message says why."""


def settings_from_data_dir(data_dir: Path) -> Settings:
    path = data_dir / CONNECTION_FILE
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReplaySetupError(
            f"no running platform in {data_dir} ({CONNECTION_FILE} is missing): start it with "
            f"`sandwich up --data-dir {data_dir}`, or set DATABASE_URL and NATS_URL/KAFKA_BOOTSTRAP_SERVERS"
        ) from None
    except (OSError, ValueError) as exc:
        raise ReplaySetupError(f"cannot read {path}: {exc}") from exc
    return Settings(
        flow=Flow(info.get("flow") or Flow.HYBRID.value),
        database_url=info.get("database_url") or "",
        nats_url=info.get("nats_url") or "",
        kafka_bootstrap_servers=info.get("kafka_bootstrap_servers") or "",
        db_prefix=info.get("db_prefix", "sandwich"),
        topic_prefix=info.get("topic_prefix") or "",
        broker_user=info.get("broker_user") or "",
        broker_password_file=info.get("broker_password_file") or "",
        data_dir=data_dir,
    )


def resolve_settings(data_dir: Path | None, default_data_dir: Path) -> Settings:
    if data_dir is not None:
        return settings_from_data_dir(data_dir.resolve())
    if os.environ.get("DATABASE_URL"):
        return Settings()
    return settings_from_data_dir(default_data_dir.resolve())


async def replay_order_info(settings: Settings, *, allow_fewer_orders: bool = False) -> ReplayReport:
    """Rebuild order_info's read model from TOPIC_ORDER_EVENTS; the report of what was done."""
    from sandwich.platform.bus.factory import BusNotConfigured, make_bus
    from sandwich.platform.db import Database
    from sandwich.platform.events import TOPIC_ORDER_EVENTS
    from sandwich.services.order_info import replay

    if not settings.database_url:
        raise ReplaySetupError("no database: DATABASE_URL is not set")
    if not settings.uses_broker:
        raise ReplaySetupError("the sync flow has no broker, so no events are retained to replay from")
    try:
        bus = make_bus(settings, client_name="sandwich-replay")
    except BusNotConfigured as exc:
        raise ReplaySetupError(str(exc)) from exc
    database = Database(settings, "order_info", pool_size=1, max_overflow=0)
    try:
        await database.prepare(Path(replay.__file__).parent / "migrations")
        await bus.start()
        report = replay.ReplayReport()
        async with database.begin() as conn:
            envelopes = replay.envelopes_of(bus.read_retained(TOPIC_ORDER_EVENTS), report)
            await replay.rebuild(conn, envelopes, report=report, allow_fewer_orders=allow_fewer_orders)
        return report
    finally:
        await bus.close()
        await database.close()


def cmd_replay(args: argparse.Namespace, default_data_dir: Path, console: Console) -> int:
    """Errors go to `console` (stderr); the summary table goes to stdout."""
    from sandwich.platform.bus.base import BusUnavailable
    from sandwich.platform.observability import configure_logging
    from sandwich.services.order_info.replay import ReplayWouldLoseOrders

    # Warnings (a skipped invalid event, a broker hiccup) go to stderr; the summary to stdout.
    configure_logging("sandwich-replay", os.environ.get("SANDWICH_LOG_LEVEL") or "warning")

    service = str(args.service).replace("-", "_")
    if service not in REPLAYABLE:
        console.print(
            f"[red]cannot replay {args.service!r}[/]: only {', '.join(REPLAYABLE)} is rebuilt from events"
        )
        return 2
    try:
        settings = resolve_settings(args.data_dir, default_data_dir)
        began = time.monotonic()
        with console.status(f"rebuilding {service} from the retained events ..."):
            report = asyncio.run(replay_order_info(settings, allow_fewer_orders=args.force))
    except ReplaySetupError as exc:
        console.print(f"[red]replay failed:[/] {exc}")
        return 1
    except ReplayWouldLoseOrders as exc:
        console.print(f"[red]nothing changed:[/] {exc}; run again with --force to accept that")
        return 1
    except BusUnavailable as exc:
        console.print(f"[red]replay failed, nothing changed:[/] the broker cannot be read: {exc}")
        return 1
    except Exception as exc:  # the database or broker failed midway: the transaction rolled back
        console.print(f"[red]replay failed, nothing changed:[/] {exc!r}")
        return 1
    table = Table(title=f"{service} rebuilt in {time.monotonic() - began:.2f}s", title_justify="left")
    table.add_column("", no_wrap=True)
    table.add_column("count", justify="right")
    table.add_row("events read", str(report.events))
    table.add_row("events applied", str(report.applied))
    table.add_row("duplicates skipped", str(report.duplicates))
    if report.ignored:
        table.add_row("other event types skipped", str(report.ignored))
    if report.invalid or report.undecodable:
        table.add_row("invalid events skipped", str(report.invalid + report.undecodable))
    table.add_row("orders before", str(report.orders_before))
    table.add_row("orders rebuilt", str(report.orders))
    Console().print(table)
    return 0
