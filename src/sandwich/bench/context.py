"""What the phases of one flow share: the platform, the client, funded customers, the resource sampler.

`prepare` makes it (the bench's menu item, the customers, the sampler running); `idle_memory` and
`measure_floors` are measured on it before the first phase."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from sandwich.bench.client import Http, client_for
from sandwich.bench.customers import Customer, create_menu_item, first_menu_item, login, setup_customers
from sandwich.bench.floors import database_floor, http_floor, machine_floor
from sandwich.bench.load import Record
from sandwich.bench.resources import ResourceSampler
from sandwich.bench.target import Target

ORDER_PRICE = 100  # kopecks: cheap, so one deposit pays for many orders


DEPOSIT = 10_000_000  # the most one deposit may be (API.md)


ORDERS_PER_CUSTOMER = 150  # per phase: under what GET /api/v1/orders lists (200)


@dataclass
class Durations:
    """How long each kind of phase runs (seconds)."""

    closed: float = 5.0  # held, after a ramp of up to RAMP_LEVELS steps of `ramp_step`
    ramp_step: float = 2.5
    open: float = 10.0
    fault: float = 12.0
    down_for: float = 10.0
    settle: float = 15.0  # then an unsettled phase is looked at again at the end of its flow
    floors: float = 3.0
    sample_limit: int = 200

    @classmethod
    def quick(cls) -> Durations:
        return cls(
            closed=5.0,
            ramp_step=2.0,
            open=6.0,
            fault=10.0,
            down_for=5.0,
            settle=30.0,
            floors=1.5,
            sample_limit=60,
        )


@dataclass
class DonePhase:
    """A phase already measured, kept for the check at the end of its flow."""

    result: dict[str, Any]
    records: list[Record]
    wall0: float
    ended: float  # monotonic


@dataclass
class Context:
    target: Target
    client: Http
    customers: list[Customer]
    menu_item_id: str
    console: Console
    durations: Durations
    sampler: ResourceSampler
    orders_placed: int = 0
    notes: list[str] = field(default_factory=list)
    done: list[DonePhase] = field(default_factory=list)


async def prepare(
    target: Target, console: Console, durations: Durations, customers: int, concurrency: int
) -> Context:
    """The bench's menu item and `customers` funded customers; the resource sampler running."""
    client = client_for(target.gateway_url, concurrency + 32)
    try:
        item_id: str
        if target.admin is not None:
            admin_token = await login(client, *target.admin, timeout=60.0)
            item_id = await create_menu_item(client, admin_token, ORDER_PRICE)
        else:
            someone = await setup_customers(client, 1, deposit=0)
            item_id, price = await first_menu_item(client, someone[0].token)
            console.log(f"[yellow]no admin given: ordering the first menu item ({price} kopecks)")
        began = time.monotonic()
        with console.status(f"registering and funding {customers} customers ...") as status:
            people = await setup_customers(
                client,
                customers,
                deposit=DEPOSIT,
                on_progress=lambda done, total: status.update(
                    f"customers: {done}/{total} registered and funded"
                ),
            )
        console.log(f"{customers} customers registered and funded in {time.monotonic() - began:.1f}s")
    except BaseException:
        await client.aclose()
        raise
    sampler = ResourceSampler(target.groups)
    sampler.start()
    return Context(target, client, people, item_id, console, durations, sampler)


def customers_needed(orders: float, floor: int) -> int:
    return max(floor, math.ceil(orders / ORDERS_PER_CUSTOMER))


async def idle_memory(ctx: Context, settle: float = 3.0) -> dict[str, dict[str, float]]:
    await asyncio.sleep(settle)
    memory = await asyncio.to_thread(ctx.sampler.memory_now)
    total_rss = sum(g["rss_mb"] for g in memory.values())
    total_pss = sum(g["pss_mb"] for g in memory.values())
    ctx.console.log(f"[{ctx.target.flow}] idle memory: RSS {total_rss:.0f} MB, PSS {total_pss:.0f} MB")
    return memory


async def measure_floors(ctx: Context, duration: float) -> dict[str, Any]:
    console = ctx.console
    floors: dict[str, Any] = {}
    if ctx.target.database_url:
        with console.status("floor 1: the database work of one order, one process ..."):
            try:
                floors["database"] = await database_floor(
                    ctx.target.database_url, duration=duration, concurrency=32
                )
                console.log(f"floor: database work {floors['database']['orders_per_s']:.0f} orders/s")
            except Exception as exc:
                floors["database_error"] = repr(exc)
                console.log(f"[red]database floor failed: {exc!r}")
    service = "menu" if "menu" in ctx.target.service_urls else next(iter(ctx.target.service_urls), None)
    service_url = ctx.target.service_urls[service] if service is not None else None
    with console.status("floor 2: a bare HTTP hop, the direct call and the platform's own hop ..."):
        try:
            floors["http"], own = await http_floor(duration=duration, platform_url=service_url)
            console.log(
                f"floor: direct {floors['http']['direct']['requests_per_s']:.0f}/s, bare hop "
                f"{floors['http']['hop']['requests_per_s']:.0f}/s"
            )
            if own is not None:
                floors["platform_hop"] = {**own, "service": service}
                console.log(f"platform hop ({service}): {own['requests_per_s']:.0f}/s")
        except Exception as exc:
            floors["http_error"] = repr(exc)
            console.log(f"[red]HTTP floor failed: {exc!r}")
    with console.status("floor 3: the machine (interpreter speed, loopback round trip) ..."):
        try:
            floors["machine"] = machine = await machine_floor()
            console.log(
                f"floor: Python loop {machine['python_loop_s'] * 1000:.0f} ms, loopback round trip "
                f"p50 {machine['round_trip']['p50'] * 1e6:.0f} us"
            )
        except Exception as exc:
            floors["machine_error"] = repr(exc)
            console.log(f"[red]machine floor failed: {exc!r}")
    return floors
