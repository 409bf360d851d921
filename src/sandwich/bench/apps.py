"""`sandwich bench --apps`: how fast the people's apps answer while many people browse at once.

Each simulated person is a real customer of a fresh platform (the demo world seeded, so the menu
is the one people see): registered and funded through the API, with one order placed, then signed
into the web app through its own sign-in form (CSRF token, session cookie), exactly as a browser
does. During a phase every person loads their order page and the menu page in turn; the time to
first byte (request sent -> status line and headers in) and the bytes of each page are recorded.

Two phases: people who read what they see (a think time between pages, 1 s on average by
default), and people who click as fast as the server answers (no think time), the worst case
the same number of people can make.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console

from sandwich.bench.client import client_for
from sandwich.bench.context import DEPOSIT
from sandwich.bench.customers import PASSWORD, Customer, login, setup_customers
from sandwich.bench.load import DELIVERY
from sandwich.bench.resources import ResourceSampler
from sandwich.bench.stats import percentiles
from sandwich.bench.target import Target, start_platform, stop_platform
from sandwich.platform.settings import Broker

TTFB_P95_TARGET_MS = 50.0
PAGE_BYTES_TARGET = 200 * 1024
PAGES = ("order", "menu")
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
STATIC_ASSETS = re.compile(r'(?:href|src)="(/static/[^"]+)"')


@dataclass
class AppsOptions:
    flow: str
    broker: Broker
    data_dir: Path
    people: int = 20
    duration: float = 20.0
    think: float = 1.0
    keep_data: bool = False


@dataclass
class Person:
    """One simulated person: signed into the web app (a cookie jar of their own), one order."""

    customer: Customer
    order_id: str
    session: aiohttp.ClientSession
    sandwich: str  # on the menu page

    def page(self, name: str) -> tuple[str, bytes]:
        """The page's path and what its body must contain."""
        if name == "order":
            return f"/orders/{self.order_id}", self.order_id.encode()
        return "/menu", html.escape(self.sandwich).encode()


@dataclass
class PageView:
    page: str
    ttfb: float  # seconds
    total: float  # seconds, until the last byte
    status: int
    size: int  # bytes of the body as sent (no compression is offered by the client)
    drawn: bool  # the page shows what it is for (the order's id, the sandwich), not another page


@dataclass
class PhaseViews:
    views: list[PageView] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


async def run_apps_bench(options: AppsOptions, console: Console) -> dict[str, Any]:
    """A fresh platform, `options.people` people signed into the apps, the two phases measured."""
    base = options.data_dir / "bench"
    base.mkdir(parents=True, exist_ok=True)
    target = await asyncio.to_thread(
        partial(start_platform, options.flow, base, console, broker=options.broker)
    )
    try:
        apps_url = target.platform.apps_url if target.platform is not None else None
        if not apps_url:
            raise RuntimeError("the platform runs no web service: nothing to measure")
        menu_item = await asyncio.to_thread(_seed_demo_world, target)
        people = await _people(target, apps_url, options.people, menu_item, console)
        sampler = ResourceSampler(target.groups)
        sampler.start()
        try:
            static_bytes = await _static_bytes(people[0].session, apps_url)
            phases = []
            for name, think in (("browsing", options.think), ("back to back", 0.0)):
                phases.append(await _phase(name, people, apps_url, options.duration, think, sampler, console))
        finally:
            sampler.stop()
            await asyncio.gather(*(p.session.close() for p in people))
        return {
            "kind": "apps",
            "flow": target.flow,
            "broker": target.broker,
            "people": options.people,
            "duration_s": options.duration,
            "think_s": options.think,
            "static_bytes": static_bytes,
            "phases": phases,
            "targets": verdicts(phases),
        }
    finally:
        await asyncio.to_thread(stop_platform, target, keep=options.keep_data)


def _seed_demo_world(target: Target) -> str:
    """The demo city (menu, food points, staff), so the pages are the ones people see; returns a
    sandwich the food points can cook."""
    from sandwich.cli.demo_world import load_or_create_credentials, seed_demo_world

    assert target.admin is not None and target.data_dir is not None
    username, password = target.admin
    credentials = load_or_create_credentials(
        target.data_dir, {"SANDWICH_ADMIN_USERNAME": username, "SANDWICH_ADMIN_PASSWORD": password}
    )
    report = seed_demo_world(target.gateway_url, credentials, timeout=120.0)
    return (report.menu_created or report.menu_existing)[0]


async def _people(
    target: Target, apps_url: str, count: int, menu_item_name: str, console: Console
) -> list[Person]:
    client = client_for(target.gateway_url, count + 8)
    try:
        began = time.monotonic()
        customers = await setup_customers(client, count, deposit=DEPOSIT)
        token = await login(client, customers[0].username, PASSWORD)
        menu = await client.get("/api/v1/menu", headers={"Authorization": f"Bearer {token}"})
        item_id = next(str(i["id"]) for i in menu.json()["items"] if i["name"] == menu_item_name)
        order_ids = await asyncio.gather(*(_place_order(client, c, item_id) for c in customers))
        people = await asyncio.gather(
            *(
                _sign_in(apps_url, c, order_id, menu_item_name)
                for c, order_id in zip(customers, order_ids, strict=True)
            )
        )
        console.log(
            f"{count} people registered, funded, with an order each and signed into the apps in "
            f"{time.monotonic() - began:.1f}s"
        )
        return list(people)
    finally:
        await client.aclose()


async def _place_order(client: Any, customer: Customer, item_id: str) -> str:
    answer = await client.post(
        "/api/v1/order",
        json={"items": [{"menu_item_id": item_id, "quantity": 1}], "delivery": DELIVERY},
        headers={**customer.headers, "Idempotency-Key": f"apps-bench-{customer.username}"},
    )
    if answer.status_code not in (201, 202):
        raise RuntimeError(f"order of {customer.username}: {answer.status_code} {answer.text[:200]}")
    return str(answer.json()["order_id"])


async def _sign_in(apps_url: str, customer: Customer, order_id: str, sandwich: str) -> Person:
    """Through the sign-in form, as a browser: its CSRF token and cookie first, then the post."""
    session = aiohttp.ClientSession(
        base_url=apps_url, cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=aiohttp.ClientTimeout(total=30)
    )
    try:
        async with session.get("/signin") as form:
            found = CSRF_FIELD.search(await form.text())
        if found is None:
            raise RuntimeError("the sign-in page carries no CSRF token")
        fields = {"username": customer.username, "password": PASSWORD, "csrf": found.group(1)}
        async with session.post("/signin", data=fields, allow_redirects=False) as answer:
            if answer.status != 303:
                raise RuntimeError(
                    f"signing {customer.username} in: {answer.status} {(await answer.text())[:200]}"
                )
    except BaseException:
        await session.close()
        raise
    return Person(customer, order_id, session, sandwich)


async def _static_bytes(session: aiohttp.ClientSession, apps_url: str) -> dict[str, int]:
    """What a first visit fetches besides the page (later visits have it cached)."""
    async with session.get("/menu") as page:
        assets = sorted(set(STATIC_ASSETS.findall(await page.text())))
    sizes: dict[str, int] = {}
    for asset in assets:
        async with session.get(asset) as answer:
            sizes[asset] = len(await answer.read())
    return sizes


async def _phase(
    name: str,
    people: Sequence[Person],
    apps_url: str,
    duration: float,
    think: float,
    sampler: ResourceSampler,
    console: Console,
) -> dict[str, Any]:
    views = PhaseViews()
    t0 = time.monotonic()
    deadline = t0 + duration
    await asyncio.gather(*(_browse(person, deadline, think, views) for person in people))
    t1 = time.monotonic()
    result = summarize(name, views, t1 - t0, think)
    result["resources"] = sampler.window(t0, t1)
    web_cpu = (result["resources"].get("web") or {}).get("cpu_seconds")
    if web_cpu is not None and views.views:
        result["web_cpu_ms_per_view"] = round(1000.0 * web_cpu / len(views.views), 2)
    console.log(_line(result))
    return result


async def _browse(person: Person, deadline: float, think: float, views: PhaseViews) -> None:
    # People do not start in step: the first page of each comes at a random moment of one think.
    await asyncio.sleep(random.uniform(0, think))
    turn = random.randrange(len(PAGES))
    while time.monotonic() < deadline:
        page = PAGES[turn % len(PAGES)]
        turn += 1
        path, marker = person.page(page)
        try:
            views.views.append(await _view(person.session, page, path, marker))
        except (aiohttp.ClientError, TimeoutError) as exc:
            views.failures.append(f"{page}: {exc!r}"[:200])
        if think:
            await asyncio.sleep(random.uniform(0.5 * think, 1.5 * think))


async def _view(session: aiohttp.ClientSession, page: str, path: str, marker: bytes) -> PageView:
    began = time.perf_counter()
    async with session.get(path, allow_redirects=False) as answer:
        first_byte = time.perf_counter()
        body = await answer.read()
    done = time.perf_counter()
    return PageView(page, first_byte - began, done - began, answer.status, len(body), marker in body)


def summarize(name: str, views: PhaseViews, seconds: float, think: float) -> dict[str, Any]:
    """Per page: how many views, TTFB and whole-page time (ms), bytes, and the views that were not
    the page (another status, or a body without the order's id or the sandwich's name)."""
    pages: dict[str, Any] = {}
    for page in PAGES:
        mine = [v for v in views.views if v.page == page]
        good = [v for v in mine if v.status == 200 and v.drawn]
        pages[page] = {
            "views": len(mine),
            "not_ok": len(mine) - len(good),
            "ttfb_ms": _in_ms(percentiles(v.ttfb for v in good)),
            "total_ms": _in_ms(percentiles(v.total for v in good)),
            "bytes": max((v.size for v in good), default=0),
        }
    return {
        "phase": name,
        "think_s": think,
        "seconds": round(seconds, 2),
        "views_per_s": round(len(views.views) / seconds, 1) if seconds > 0 else 0.0,
        "failures": len(views.failures),
        "failure_examples": views.failures[:5],
        "pages": pages,
    }


def _in_ms(stats: dict[str, float | int | None]) -> dict[str, float | int | None]:
    return {
        key: (round(value * 1000.0, 1) if key != "count" and value is not None else value)
        for key, value in stats.items()
    }


def verdicts(phases: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, judged on the browsing phase (people who read their pages)."""
    browsing = phases[0]
    verdicts = []
    for page, figures in browsing["pages"].items():
        p95 = figures["ttfb_ms"]["p95"]
        verdicts.append(
            {
                "name": f"{page} page: time to first byte p95 under {TTFB_P95_TARGET_MS:.0f} ms",
                "measured": f"{p95} ms" if p95 is not None else "no views",
                "met": None if p95 is None else bool(p95 < TTFB_P95_TARGET_MS and not figures["not_ok"]),
                "by": f"{browsing['phase']}, {figures['views']} views",
            }
        )
        verdicts.append(
            {
                "name": f"{page} page: under {PAGE_BYTES_TARGET // 1024} KB",
                "measured": f"{figures['bytes']} bytes",
                "met": bool(0 < figures["bytes"] < PAGE_BYTES_TARGET),
                "by": "the largest body seen",
            }
        )
    return verdicts


def _line(phase: dict[str, Any]) -> str:
    parts = [f"{phase['phase']}: {phase['views_per_s']} views/s"]
    for page, figures in phase["pages"].items():
        ttfb = figures["ttfb_ms"]
        parts.append(f"{page} ttfb p50 {ttfb['p50']} / p95 {ttfb['p95']} ms, {figures['bytes']} B")
    if phase.get("web_cpu_ms_per_view") is not None:
        parts.append(f"web CPU {phase['web_cpu_ms_per_view']} ms a view")
    if phase["failures"]:
        parts.append(f"{phase['failures']} failed")
    return "; ".join(parts)


def render_apps_table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(
        title=f"sandwich bench --apps: {result['people']} people, {result['flow']}", title_justify="left"
    )
    for column in (
        "phase",
        "page",
        "views",
        "views/s",
        "ttfb p50",
        "ttfb p95",
        "ttfb p99",
        "bytes",
        "not ok",
    ):
        table.add_column(column, justify="left" if column in ("phase", "page") else "right")
    for phase in result["phases"]:
        for page, figures in phase["pages"].items():
            ttfb = figures["ttfb_ms"]
            table.add_row(
                phase["phase"],
                page,
                str(figures["views"]),
                str(phase["views_per_s"]),
                *(f"{ttfb[k]} ms" if ttfb[k] is not None else "-" for k in ("p50", "p95", "p99")),
                str(figures["bytes"]),
                str(figures["not_ok"] + 0),
            )
    with contextlib.suppress(KeyError):
        statics = ", ".join(f"{k} {v} B" for k, v in result["static_bytes"].items())
        table.caption = f"first visit also fetches: {statics} (cached afterwards)"
    return table
