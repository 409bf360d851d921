"""`sandwich bench`: load a platform and measure it; `--compare` runs every flow under faults.

    sandwich bench [--flow F] [--broker B] [--rate R] [--customers N] [--duration S] [--json PATH]
                   [--url URL | --data-dir DIR] [--quick] [--no-floors]
        one flow: an open-loop phase at R orders/s and/or a closed-loop phase with N virtual
        customers (default: --rate 100); a table on the terminal, everything in the JSON file
    sandwich bench --compare [--flows hybrid,sync,async] [--broker B] [--quick] [--publish DIR]
        every flow healthy and under each fault; report.md with plots under DATA_DIR/bench/
    sandwich bench --compare --brokers nats,kafka
        the compare on the first broker, and hybrid's max throughput and its phase at 100/s on each
        further one: the report's section "Brokers side by side: hybrid"
    sandwich bench --apps [--people N] [--think S] [--duration S]
        the people's apps: time to first byte and bytes of the customer's order and menu pages with
        N people (default 20) browsing at once, with a think time of S seconds (default 1) and
        back to back
    sandwich bench --tracing [--flow F] [--rate R] [--duration S] [--repeat K]
        the platform's CPU per order with tracing off and with every order traced (exported over
        OTLP to a sink that drops it), K alternating pairs in one run
    sandwich bench --scale N [--customers C] [--duration S]
        closed-loop throughput at 1,000 orders in the databases and again at N (filled through the
        API in between, the throughput while filling recorded as a curve)

Without --url the benchmark starts a fresh platform of its own (embedded PostgreSQL and the broker:
--broker nats|kafka, default SANDWICH_BROKER, else nats) in DATA_DIR/bench/ and removes it
afterwards (--keep-data keeps it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from rich.console import Console

from sandwich.platform.settings import Broker, Flow


def add_arguments(bench: argparse.ArgumentParser, default_data_dir: str) -> None:
    bench.add_argument(
        "--flow", choices=[f.value for f in Flow], default=os.environ.get("SANDWICH_FLOW", "hybrid")
    )
    bench.add_argument(
        "--broker",
        choices=[b.value for b in Broker],
        default=None,
        help="the broker the self-started platform embeds: nats or kafka (Apache Kafka in KRaft mode; "
        "Java 17+ and Maven for its jars); default SANDWICH_BROKER, else nats",
    )
    bench.add_argument(
        "--brokers",
        default=None,
        metavar="B1,B2",
        help="with --compare: the whole compare on B1, and on each further broker hybrid's max "
        "throughput and its phase at 100/s, side by side in the report (e.g. nats,kafka)",
    )
    bench.add_argument(
        "--rate",
        type=float,
        default=None,
        help="open loop: orders per second (default 100; with --compare 50, plus hybrid at 100)",
    )
    bench.add_argument("--customers", type=int, default=None, help="closed loop: this many virtual customers")
    bench.add_argument("--duration", type=float, default=None, help="seconds of load per phase (default 20)")
    bench.add_argument("--json", type=Path, default=None, help="where to write the results (JSON)")
    bench.add_argument(
        "--url", default=None, help="load a running platform's gateway instead of starting one"
    )
    bench.add_argument(
        "--data-dir",
        type=Path,
        default=Path(default_data_dir),
        help=f"the benchmark works under DATA_DIR/bench (default ./{default_data_dir})",
    )
    bench.add_argument(
        "--admin",
        default=None,
        metavar="USER:PASSWORD",
        help="with --url: an admin to create the bench's menu item (default: DATA_DIR/demo-credentials.json)",
    )
    bench.add_argument(
        "--compare", action="store_true", help="every flow, healthy and under faults, with a report"
    )
    bench.add_argument(
        "--flows", default="hybrid,sync,async", help="with --compare: which flows (comma separated)"
    )
    bench.add_argument("--quick", action="store_true", help="short phases (tests, a first look)")
    bench.add_argument("--no-floors", action="store_true", help="do not measure the floors")
    bench.add_argument(
        "--keep-data", action="store_true", help="keep the self-started platform's data directory"
    )
    bench.add_argument("--publish", type=Path, default=None, help="with --compare: also copy the report here")
    bench.add_argument(
        "--profile",
        action="store_true",
        help="py-spy samples the busiest services during each phase: where the CPU goes (JSON)",
    )
    bench.add_argument(
        "--apps",
        action="store_true",
        help="the people's apps: time to first byte and bytes of the order and menu pages",
    )
    bench.add_argument("--people", type=int, default=20, help="with --apps: people browsing at once")
    bench.add_argument(
        "--think", type=float, default=1.0, help="with --apps: mean seconds a person reads a page"
    )
    bench.add_argument(
        "--tracing",
        action="store_true",
        help="CPU per order with tracing off and with every order traced, side by side in one run "
        "(open loop at --rate, default 50/s; --repeat pairs, default 2)",
    )
    bench.add_argument("--repeat", type=int, default=2, help="with --tracing: off/on pairs to run")
    bench.add_argument(
        "--scale",
        type=int,
        default=None,
        metavar="N",
        help="throughput at 1,000 orders in the databases, then again once N are (e.g. 100000: about "
        "20 minutes at 85 orders/s); closed loop with --customers (default 32)",
    )


def cmd_bench(args: argparse.Namespace) -> int:
    from sandwich.bench.report import render_table, write_json

    console = Console(stderr=True)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    data_dir: Path = args.data_dir.resolve()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if args.apps:
        return _apps(args, data_dir, console, stamp)
    if args.tracing:
        return _tracing(args, data_dir, console, stamp)
    measure = _compare if args.compare else _single
    result = _run(lambda: measure(args, data_dir, console), console)
    if isinstance(result, int):
        return result
    out = _table_console(width=220)
    out.print(render_table(result["phases"]))
    compared = result.get("broker_comparison") or {}
    if compared.get("phases"):
        out.print(render_table(compared["phases"], title="hybrid on the further brokers"))
    _print_targets(console, result)
    if args.compare:
        from sandwich.bench.plots import PLOTS_NEED, pyplot

        if pyplot() is None:
            console.print(f"[yellow]{PLOTS_NEED}[/]: the report is written without them")
        directory = data_dir / "bench" / f"compare-{stamp}"
        path = _write_report(result, directory)
        latest = data_dir / "bench" / "latest"
        shutil.rmtree(latest, ignore_errors=True)
        shutil.copytree(directory, latest)
        if args.publish is not None:
            # The report and its plots; the JSON (every sample, most of a megabyte) stays local.
            shutil.copytree(
                directory, args.publish, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.json")
            )
        json_path = args.json or directory / "report.json"
        if args.json:
            write_json(result, args.json)
        console.print(f"report: {path}\nJSON: {json_path}\nlatest: {latest / 'report.md'}")
        return 0 if result["phases"] else 1
    json_path = args.json or data_dir / "bench" / f"bench-{result['flow']}-{stamp}.json"
    write_json(result, json_path)
    console.print(f"JSON: {json_path}")
    return 0 if result["phases"] else 1


def _run(work: Callable[[], Coroutine[Any, Any, dict[str, Any]]], console: Console) -> dict[str, Any] | int:
    """A benchmark's result, or the exit code when it was interrupted (130) or failed (1)."""
    try:
        return asyncio.run(work())
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130
    except Exception as exc:
        console.print(f"[red]the benchmark failed:[/] {exc}")
        return 1


def _phase_seconds(args: argparse.Namespace) -> float:
    """--duration, else 8 s with --quick, else 20 s."""
    return float(args.duration) if args.duration is not None else (8.0 if args.quick else 20.0)


def _table_console(width: int = 160) -> Console:
    """The terminal, or a page `width` columns wide when the output is not one."""
    return Console() if Console().is_terminal else Console(width=width)


def _apps(args: argparse.Namespace, data_dir: Path, console: Console, stamp: str) -> int:
    from sandwich.bench.apps import AppsOptions, render_apps_table, run_apps_bench
    from sandwich.bench.report import write_json

    if args.url or args.compare or args.scale:
        raise SystemExit(
            "--apps starts a platform of its own and goes with none of --url, --compare, --scale"
        )
    if args.people < 1 or args.think < 0:
        raise SystemExit("--people is at least 1 and --think is not negative")
    options = AppsOptions(
        flow=args.flow,
        broker=_brokers(args)[0],
        data_dir=data_dir,
        people=args.people,
        duration=_phase_seconds(args),
        think=args.think,
        keep_data=args.keep_data,
    )
    result = _run(lambda: run_apps_bench(options, console), console)
    if isinstance(result, int):
        return result
    out = _table_console()
    out.print(render_apps_table(result))
    _print_targets(console, result)
    json_path = args.json or data_dir / "bench" / f"bench-apps-{result['flow']}-{stamp}.json"
    write_json(result, json_path)
    console.print(f"JSON: {json_path}")
    return 0 if all(phase["pages"]["order"]["views"] for phase in result["phases"]) else 1


def _tracing(args: argparse.Namespace, data_dir: Path, console: Console, stamp: str) -> int:
    from sandwich.bench.report import write_json
    from sandwich.bench.tracing_cost import TracingOptions, render_tracing_table, run_tracing_bench

    if args.url or args.compare or args.scale or args.apps:
        raise SystemExit(
            "--tracing starts platforms of its own and goes with none of --url, --compare, --scale"
        )
    if args.repeat < 1:
        raise SystemExit("--repeat is at least 1")
    options = TracingOptions(
        flow=args.flow,
        broker=_brokers(args)[0],
        data_dir=data_dir,
        rate=args.rate if args.rate is not None else 50.0,
        duration=_phase_seconds(args),
        repeat=args.repeat,
        keep_data=args.keep_data,
    )
    result = _run(lambda: run_tracing_bench(options, console), console)
    if isinstance(result, int):
        return result
    out = _table_console()
    out.print(render_tracing_table(result))
    summary = result["summary"]
    if summary.get("increase_percent") is not None:
        verdict = "within" if summary["within_budget"] else "[red]over[/]"
        console.print(
            f"tracing every order costs {summary['increase_percent']:+.1f} % CPU per order "
            f"({verdict} the {result['budget_percent']:g} % budget); the sink took "
            f"{result['sink']['batches']} batches, {result['sink']['bytes'] / 1e6:.1f} MB"
        )
    json_path = args.json or data_dir / "bench" / f"bench-tracing-{result['flow']}-{stamp}.json"
    write_json(result, json_path)
    console.print(f"JSON: {json_path}")
    return 0 if summary.get("increase_percent") is not None else 1


async def _single(args: argparse.Namespace, data_dir: Path, console: Console) -> dict[str, Any]:
    from sandwich.bench.runner import SingleOptions, run_single

    rate = args.rate
    if args.scale is not None and args.scale <= 2_000:
        raise ValueError("--scale N needs N above 2,000 (the first measurement is at 1,000 orders)")
    if rate is None and args.customers is None and args.scale is None:
        rate = 100.0
    duration = _phase_seconds(args)
    admin = None
    if args.admin:
        user, _, password = str(args.admin).partition(":")
        admin = (user, password)
    options = SingleOptions(
        flow=args.flow,
        rate=rate,
        customers=args.customers,
        duration=duration,
        url=args.url,
        data_dir=data_dir,
        admin=admin,
        floors=not args.no_floors,
        quick=args.quick,
        keep_data=args.keep_data,
        scale_to=args.scale,
        profile=args.profile,
        broker=_brokers(args)[0],
    )
    return await run_single(options, console)


def _brokers(args: argparse.Namespace) -> list[Broker]:
    """--brokers (with --compare), else --broker, else SANDWICH_BROKER, else nats."""
    from sandwich.bench.brokers import default_broker, parse_brokers

    if args.brokers is not None:
        if not args.compare:
            raise ValueError("--brokers goes with --compare (a single run takes --broker)")
        brokers = parse_brokers(str(args.brokers))
        if args.broker is not None and brokers[0].value != args.broker:
            raise ValueError(
                f"--broker {args.broker} and --brokers {args.brokers} name different first brokers"
            )
        return brokers
    return parse_brokers(args.broker or default_broker())


async def _compare(args: argparse.Namespace, data_dir: Path, console: Console) -> dict[str, Any]:
    from sandwich.bench.compare import CompareOptions, run_compare

    flows = [f.strip() for f in str(args.flows).split(",") if f.strip()]
    unknown = [f for f in flows if f not in {x.value for x in Flow}]
    if unknown:
        raise ValueError(f"unknown flows: {', '.join(unknown)}")
    options = CompareOptions(
        flows=flows,
        data_dir=data_dir,
        rate=args.rate or 50.0,
        customers=args.customers or 32,
        quick=args.quick,
        keep_data=args.keep_data,
        brokers=_brokers(args),
    )
    return await run_compare(options, console)


def _write_report(result: dict[str, Any], directory: Path) -> Path:
    from sandwich.bench.markdown import write_markdown
    from sandwich.bench.plots import plot_latencies, plot_throughput
    from sandwich.bench.report import write_json

    directory.mkdir(parents=True, exist_ok=True)
    write_json(result, directory / "report.json")  # first: whatever happens to the plots
    phases = result["phases"]
    plots: dict[str, str] = {}
    wanted = [
        (
            "latency distributions per flow (healthy)",
            "latency.png",
            lambda path: plot_latencies(
                [p for p in phases if p.get("scenario") == "healthy"],
                path,
                "healthy, open loop: create latency per flow",
            ),
        ),
        (
            "latency distributions per flow (closed loop)",
            "latency-max.png",
            lambda path: plot_latencies(
                [p for p in phases if p.get("scenario") == "max throughput"],
                path,
                "closed loop at full speed",
            ),
        ),
        (
            "throughput over time, fault window shaded",
            "throughput.png",
            lambda path: plot_throughput([p for p in phases if p.get("mode") == "open"], path),
        ),
    ]
    for caption, name, draw in wanted:
        try:
            if draw(directory / name):
                plots[caption] = name
        except Exception as exc:
            result.setdefault("notes", []).append(f"plot {name} failed: {exc!r}")
    result["plots"] = plots
    write_json(result, directory / "report.json")
    return write_markdown(result, directory)


def _print_targets(console: Console, result: dict[str, Any]) -> None:
    for verdict in result.get("targets") or ():
        mark = {True: "[green]met[/]", False: "[red]MISSED[/]", None: "[yellow]not measured[/]"}[
            verdict["met"]
        ]
        console.print(f"{mark}  {verdict['name']}: {verdict['measured']} ({verdict['by']})", highlight=False)
    for flow, reason in (result.get("skipped") or {}).items():
        console.print(f"[yellow]skipped {flow}[/]: {reason}", highlight=False)
