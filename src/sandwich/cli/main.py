"""The `sandwich` command.

    sandwich up [--flow hybrid|sync|async] [--broker nats|kafka] [--data-dir DIR] [--port 8080] [--apps-port 8081] [--host H] [--demo]
        the whole platform on this machine, supervised, until Ctrl-C
    sandwich replay order_info [--data-dir DIR] [--force]
        rebuild the read model from the events the broker retains
    sandwich bench [--flow F] [--rate R | --customers N] [--duration S] [--json PATH] [--compare]
        load the platform and measure it (sandwich/cli/bench.py)
    sandwich serve SERVICE [--port P]
        one service (or `mailsink`) in the foreground, configured by environment variables: what
        `up` runs for each service, and what a container runs

argparse (stdlib) keeps the CLI free of extra dependencies; rich only renders the output.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from rich.console import Console
from rich.logging import RichHandler
from rich.panel import Panel
from rich.table import Table

from sandwich.cli.serve import MAILSINK
from sandwich.platform.settings import SERVICES, Broker, Flow

if TYPE_CHECKING:  # `serve` runs in every service process: keep its imports light
    from sandwich.cli.demo_world import DemoCredentials, DemoReport
    from sandwich.supervisor import Platform

DEFAULT_DATA_DIR = ".sandwich-data"

console = Console(stderr=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sandwich", description="Sandwich ordering and delivery platform.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run one service in the foreground (settings from the environment)"
    )
    serve.add_argument("service", help=f"one of: {', '.join((*SERVICES, MAILSINK))}")
    serve.add_argument(
        "--port", type=int, default=None, help="overrides SANDWICH_PORT (SANDWICH_SMTP_PORT for mailsink)"
    )
    serve.add_argument(
        "--dir", type=Path, default=None, help="mailsink only: where to store mail (DATA_DIR/mail)"
    )
    serve.set_defaults(handler=cmd_serve)

    migrate = commands.add_parser(
        "migrate", help="bring the services' databases to their newest schema (DATABASE_URL), then exit"
    )
    migrate.add_argument("services", nargs="*", help="default: every service with a database")
    migrate.add_argument(
        "--service-roles",
        type=Path,
        metavar="DIR",
        help="give each service a role of its own that owns its database (passwords in DIR, 0600)",
    )
    migrate.set_defaults(handler=cmd_migrate)

    up = commands.add_parser("up", help="run the whole platform on this machine")
    up.add_argument(
        "--flow", choices=[f.value for f in Flow], default=os.environ.get("SANDWICH_FLOW", "hybrid")
    )
    up.add_argument(
        "--broker",
        choices=[b.value for b in Broker],
        default=os.environ.get("SANDWICH_BROKER", Broker.NATS.value),
        help="the broker to embed when neither NATS_URL nor KAFKA_BOOTSTRAP_SERVERS is set: nats "
        "(default) or kafka (Apache Kafka in KRaft mode; needs Java 17+ and Maven for its jars)",
    )
    up.add_argument(
        "--data-dir", type=Path, default=Path(DEFAULT_DATA_DIR), help=f"default ./{DEFAULT_DATA_DIR}"
    )
    up.add_argument("--port", type=int, default=8080, help="the gateway's port (default 8080)")
    up.add_argument("--apps-port", type=int, default=8081, help="the people's apps' port (default 8081)")
    up.add_argument(
        "--host", default="127.0.0.1", help="the gateway's address (the other services stay on 127.0.0.1)"
    )
    up.add_argument(
        "--demo",
        action="store_true",
        help="seed the demo world: menu, admin, customer alice, food points, cooks, couriers",
    )
    up.add_argument(
        "--traces",
        action="store_true",
        help="run Jaeger (built once with Go) and trace every request into it; prints its UI's address",
    )
    up.add_argument(
        "--observe",
        action="store_true",
        help="run Prometheus (Debian's prometheus) scraping every service with the alerting rules",
    )
    up.add_argument("--ready-timeout", type=float, default=60.0, help=argparse.SUPPRESS)
    up.set_defaults(handler=cmd_up)

    demo = commands.add_parser("demo", help="walk the eight steps of ADR 000 against a running platform")
    demo.add_argument(
        "--url", default="http://127.0.0.1:8080", help="the gateway (default http://127.0.0.1:8080)"
    )
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=Path(DEFAULT_DATA_DIR),
        help="where `up --demo` kept the demo credentials",
    )
    demo.set_defaults(handler=cmd_demo)

    replay = commands.add_parser(
        "replay", help="rebuild a read model from the events the broker retains (order_info)"
    )
    replay.add_argument("service", help="order_info")
    replay.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="of a running `sandwich up` (default: the environment, else ./" + DEFAULT_DATA_DIR + ")",
    )
    replay.add_argument(
        "--force", action="store_true", help="accept a rebuilt model with fewer orders than the current one"
    )
    replay.set_defaults(handler=cmd_replay)

    secrets = commands.add_parser(
        "secrets", help="make the platform's secrets for a cluster: a Secret manifest the chart reads"
    )
    secrets.add_argument("target", choices=["kubernetes"], help="where the secrets go")
    secrets.add_argument(
        "--name", default="sandwich-secrets", help="the Secret's name (the chart's secrets.name)"
    )
    secrets.add_argument("--namespace", default=None, help="the release's namespace")
    secrets.add_argument(
        "--output", "-o", type=Path, required=True, help="file to write the manifest to (0600; not stdout)"
    )
    secrets.set_defaults(handler=cmd_secrets)

    bench = commands.add_parser(
        "bench", help="load the platform and measure it; --compare: every flow under faults"
    )
    from sandwich.cli.bench import add_arguments as add_bench_arguments

    add_bench_arguments(bench, DEFAULT_DATA_DIR)
    bench.set_defaults(handler=cmd_bench)
    return parser


def cmd_migrate(args: argparse.Namespace) -> int:
    """A deploy step of its own (run before the services start), and what `sandwich up` runs first,
    so that no service process loads Alembic just to find its database already up to date."""
    from sandwich.cli.migrate import migrate_services, services_with_migrations

    names = [str(name).replace("-", "_") for name in args.services] or services_with_migrations()
    unknown = sorted(set(names) - set(services_with_migrations()))
    if unknown:
        console.print(f"[red]no migrations for {', '.join(unknown)}[/]")
        return 2
    migrate_services(names, roles_dir=args.service_roles)
    return 0


def cmd_secrets(args: argparse.Namespace) -> int:
    from sandwich.cli.k8s_secrets import write_manifest

    if args.output.exists():
        console.print(f"[red]{args.output} exists: the secrets are made once; apply or remove it first[/]")
        return 2
    write_manifest(args.output, args.name, args.namespace)
    console.print(f"Secret {args.name} written to {args.output} (0600): kubectl apply -f {args.output}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from sandwich.cli.bench import cmd_bench as run_bench

    return run_bench(args)


def cmd_replay(args: argparse.Namespace) -> int:
    from sandwich.cli.replay import cmd_replay as run_replay

    return run_replay(args, Path(DEFAULT_DATA_DIR), console)


def cmd_demo(args: argparse.Namespace) -> int:
    from sandwich.cli.walkthrough import run_demo

    return run_demo(args.url, Path(args.data_dir).resolve(), Console())


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = build_parser().parse_args(argv)
    sys.exit(args.handler(args))


# -- serve ----------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from sandwich.cli.serve import serve

    return serve(str(args.service), args.port, args.dir)


# -- up -------------------------------------------------------------------------------------------


class _Shutdown(BaseException):
    """Raised in the main thread by SIGTERM/SIGHUP, like KeyboardInterrupt is by SIGINT."""


def _install_signal_handlers() -> None:
    fired = False

    def handler(signum: int, _frame: FrameType | None) -> None:
        nonlocal fired
        if fired:
            console.print("[yellow]already stopping, please wait[/]")
            return
        fired = True
        raise _Shutdown(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, handler)


def cmd_up(args: argparse.Namespace) -> int:
    from sandwich.cli import demo_world
    from sandwich.cli.watchers import MissingTool, Watchers
    from sandwich.supervisor import Platform, PlatformStartError

    logging.basicConfig(
        level=logging.INFO,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=True)],
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env_overrides: dict[str, str] = {}
    credentials = None
    if args.demo:
        credentials = demo_world.load_or_create_credentials(data_dir)
        env_overrides.update(credentials.admin_env())

    watchers = Watchers(data_dir, console)
    try:
        if args.traces:
            env_overrides.update(watchers.start_traces())
    except MissingTool as exc:
        console.print(Panel(str(exc), title="[red]--traces cannot run here[/]", border_style="red"))
        return 1
    platform = Platform(
        data_dir,
        args.flow,
        gateway_port=args.port,
        apps_port=args.apps_port,
        env_overrides=env_overrides,
        host=args.host,
        broker=args.broker,
    )
    platform.ready_timeout = args.ready_timeout
    _install_signal_handlers()
    began = time.monotonic()
    try:
        with console.status(f"starting the platform ({args.flow} flow, {args.broker}) in {data_dir} ..."):
            platform.start()
        if args.observe:
            watchers.start_prometheus(platform)
        console.print(_status_table(platform))
        watchers.print_addresses()
        console.print(
            f"[bold green]ready[/] in {time.monotonic() - began:.1f}s: gateway at "
            f"[link={platform.gateway_url}]{platform.gateway_url}[/link], "
            f"the apps at [link={platform.apps_url}]{platform.apps_url}[/link]\n"
            f"logs in {platform.logs_dir}, mail in {platform.mail_dir}"
        )
        if credentials is not None:
            with console.status("seeding the demo world ..."):
                report = demo_world.seed_demo_world(platform.gateway_url, credentials)
            _print_demo(report, credentials, platform.gateway_url, platform.apps_url)
        console.print("press Ctrl-C to stop")
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, _Shutdown):
        console.print("stopping ...")
        return 0
    except PlatformStartError as exc:
        console.print(Panel(str(exc), title="[red]the platform did not start[/]", border_style="red"))
        return 1
    except MissingTool as exc:
        console.print(Panel(str(exc), title="[red]--observe cannot run here[/]", border_style="red"))
        return 1
    except demo_world.DemoSeedError as exc:
        console.print(Panel(str(exc), title="[red]the demo world could not be seeded[/]", border_style="red"))
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        platform.stop()
        watchers.stop()
        console.print("stopped")


def _status_table(platform: Platform) -> Table:
    table = Table(title=f"sandwich platform ({platform.flow.value} flow)", title_justify="left")
    table.add_column("part", no_wrap=True)
    table.add_column("address", overflow="fold")
    table.add_column("pid", justify="right", no_wrap=True)
    for row in platform.components():
        external = " (external)" if "external" in row.kind else ""
        table.add_row(f"{row.name}{external}", row.address, str(row.pid or "-"))
    return table


def _print_demo(
    report: DemoReport, credentials: DemoCredentials, gateway_url: str, apps_url: str | None
) -> None:
    """What the demo world holds and who can sign in; the passwords stay in their 0600 file (a
    terminal's output ends up in logs and scrollback), with the command that reads one."""
    customer = credentials.customer
    read_password = f"jq -r .{customer.username}.password {credentials.path}"
    # The JSON body in single quotes, the password spliced in from the file by the shell.
    body = f'{{"username": "{customer.username}", "password": "\'"$({read_password})"\'"}}'
    lines = [
        f"menu: {len(report.menu_created)} created, {len(report.menu_existing)} already there",
        f"customer {credentials.customer.username}: "
        + ("registered" if report.customer_registered else "already registered")
        + (f", balance {report.customer_balance / 100:.2f}" if report.customer_balance is not None else ""),
        "",
        f"the apps: {apps_url}, sign in as any of these" if apps_url else "the apps do not run here",
        f"admin     {credentials.admin.username}",
        f"customer  {credentials.customer.username}",
        f"staff     {', '.join(who.username for who in credentials.staff.values())}",
        f"food points: {', '.join(report.food_points) or '-'}",
        f"passwords: in {credentials.path} (0600), e.g. {read_password}",
        "",
        f"try: curl -s {gateway_url}/api/v1/auth/login -H 'content-type: application/json' -d '{body}'",
    ]
    lines += [f"[yellow]warning:[/] {w}" for w in report.warnings]
    console.print(Panel("\n".join(lines), title="demo world", border_style="green"))


if __name__ == "__main__":
    main()
