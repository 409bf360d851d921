"""`sandwich demo`: the eight steps of ADR 000, walked through the public API as the customer, the
cook and a courier would, each step shown with the order's status and the time it took.

It needs the demo world (`sandwich up --demo`): the customer, cooks and couriers it logs in as are
read from the data directory's demo-credentials.json.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from sandwich.cli.demo_world import (
    DEMO_COURIERS,
    DEMO_FOOD_POINTS,
    Credentials,
    DemoCredentials,
    cook_name,
    load_or_create_credentials,
)

DELIVERY_POINT = {"address": "Tverskaya 7, Moscow", "lat": 55.7580, "lon": 37.6130}


class DemoFailed(RuntimeError):
    pass


class Walkthrough:
    def __init__(self, url: str, credentials: DemoCredentials, console: Console, timeout: float = 60.0):
        self.client = httpx.Client(base_url=url, timeout=15.0)
        self.credentials = credentials
        self.console = console
        self.timeout = timeout
        self.started = time.perf_counter()
        self.step_no = 0
        self.last_trace_id = ""  # the trace of the last answer (X-Trace-Id)
        self.order_trace_id = ""
        self.traces_url = ""  # Jaeger's UI, when `sandwich up --traces` runs the platform

    def close(self) -> None:
        self.client.close()

    # --- plumbing --------------------------------------------------------------------------------
    def login(self, who: Credentials) -> dict[str, str]:
        answer = self.client.post(
            "/api/v1/auth/login", json={"username": who.username, "password": who.password}
        )
        if answer.status_code != 200:
            raise DemoFailed(f"{who.username} cannot log in ({answer.status_code}): is this the demo world?")
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def call(
        self, method: str, path: str, auth: dict[str, str], expect: int | tuple[int, ...] = 200, **kwargs: Any
    ) -> Any:
        """One call; `expect` is the status (or statuses: 201 or the async flow's 202) it must answer."""
        answer = self.client.request(method, path, headers={**auth, **kwargs.pop("headers", {})}, **kwargs)
        if answer.status_code not in (expect if isinstance(expect, tuple) else (expect,)):
            raise DemoFailed(f"{method} {path} answered {answer.status_code}: {answer.text}")
        self.last_trace_id = answer.headers.get("x-trace-id", "")
        return answer.json()

    def step(self, title: str, status: str, detail: str = "") -> None:
        self.step_no += 1
        elapsed = (time.perf_counter() - self.started) * 1000
        self.console.print(
            f"[bold cyan]{self.step_no}.[/] {title:<52} [bold]{status:<12}[/] [dim]{elapsed:8.0f} ms[/] {detail}"
        )

    def wait_for(
        self, auth: dict[str, str], order_id: str, done: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            answer = self.client.get(f"/api/v1/orders/{order_id}", headers=auth)
            if answer.status_code == 200 and done(answer.json()):
                order: dict[str, Any] = answer.json()
                return order
            time.sleep(0.05)
        raise DemoFailed(f"order {order_id} did not get there within {self.timeout:.0f} s")

    def wait_until(self, check: Callable[[], bool], failure: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not check():
            if time.monotonic() > deadline:
                raise DemoFailed(failure)
            time.sleep(0.05)

    # --- the scenario ----------------------------------------------------------------------------
    def run(self) -> None:
        customer = self.login(self.credentials.customer)
        page = self.call("GET", "/api/v1/pages/orders", customer)
        menu = (
            page["menu"]["items"] if page.get("menu") else self.call("GET", "/api/v1/menu", customer)["items"]
        )
        sandwich = menu[0]
        self.console.print(
            f"[dim]{self.credentials.customer.username} opens the orders page: {len(menu)} sandwiches, "
            f"{len((page.get('orders') or {}).get('items', []))} earlier orders[/]"
        )
        order = self.call(
            "POST",
            "/api/v1/order",
            customer,
            expect=(201, 202),
            json={"items": [{"menu_item_id": sandwich["id"], "quantity": 1}], "delivery": DELIVERY_POINT},
            headers={"Idempotency-Key": f"demo-{uuid.uuid4().hex}"},
        )
        order_id = order["order_id"]
        self.order_trace_id = self.last_trace_id
        self.step(f"customer orders 1 x {sandwich['name']}", "created", f"order {order_id[:8]}")
        if order["status"] == "created":
            order = self.wait_for(customer, order_id, lambda o: o["status"] != "created")
        self.step("order created and registered", "created")
        if order["status"] != "paid" and order["status"] != "assigned":
            raise DemoFailed(f"payment did not go through: {order['status']}")
        self.step(
            f"customer pays {order['total'] / 100:.2f} RUB",
            "paid",
            f"operation {order['payment_operation_id'][:8]}",
        )
        order = self.wait_for(customer, order_id, lambda o: o["status"] not in ("created", "paid"))
        self.step("nearest food point with a slot and ingredients chosen", order["status"])
        point = self.food_point_name(order["food_point_id"])
        self.step(f"order assigned to {point}", order["status"])
        cook_spec = next(spec for spec in DEMO_FOOD_POINTS if spec.name == point)
        cook = self.login(self.credentials.staff[cook_name(cook_spec)])
        self.wait_until(
            lambda: any(
                item["order_id"] == order_id
                for item in self.call("GET", "/api/v1/kitchen/orders", cook)["items"]
            ),
            "the cook does not see the order",
        )
        self.call("POST", f"/api/v1/kitchen/orders/{order_id}/ready", cook)
        order = self.wait_for(customer, order_id, lambda o: o["status"] == "ready")
        self.step(f"{cook_name(cook_spec)} cooked it", "ready")
        courier_name = DEMO_COURIERS[0]
        courier = self.login(self.credentials.staff[courier_name])
        self.wait_until(
            lambda: any(
                item["order_id"] == order_id
                for item in self.call(
                    "GET",
                    "/api/v1/delivery/orders",
                    courier,
                    params={"lat": DELIVERY_POINT["lat"], "lon": DELIVERY_POINT["lon"]},
                )["items"]
            ),
            "the courier is not offered the order",
        )
        self.call("POST", f"/api/v1/delivery/orders/{order_id}/take", courier)
        order = self.wait_for(customer, order_id, lambda o: o["status"] == "in_delivery")
        self.step(f"{courier_name} takes it", "in_delivery")
        self.call("POST", f"/api/v1/delivery/orders/{order_id}/complete", courier)
        order = self.wait_for(customer, order_id, lambda o: o["status"] == "completed")
        self.step("delivered to the door", "completed")
        self.summary(customer, order)

    def food_point_name(self, food_point_id: str) -> str:
        admin = self.login(self.credentials.admin)
        for point in self.call("GET", "/api/v1/admin/food-points", admin)["items"]:
            if point["food_point_id"] == food_point_id:
                return str(point["name"])
        raise DemoFailed(f"unknown food point {food_point_id}")

    def summary(self, customer: dict[str, str], order: dict[str, Any]) -> None:
        history = Table(title=f"order {order['order_id']}")
        history.add_column("status")
        history.add_column("at")
        for entry in order["history"]:
            history.add_row(entry["status"], entry["at"])
        self.console.print(history)
        deadline = time.monotonic() + 10
        letters: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            letters = [
                n
                for n in self.call("GET", "/api/v1/notifications", customer)["items"]
                if n.get("order_id") == order["order_id"]
            ]
            if {n["kind"] for n in letters} >= {"order_paid", "order_completed"}:
                break
            time.sleep(0.2)
        table = Table(title="letters sent")
        for column in ("kind", "subject", "status"):
            table.add_column(column)
        for letter in reversed(letters):
            table.add_row(letter["kind"], letter["subject"], letter["status"])
        self.console.print(table)
        if self.order_trace_id:
            where = (
                f"{self.traces_url}/trace/{self.order_trace_id}"
                if self.traces_url
                else "start the platform with `sandwich up --traces` to look at it in Jaeger"
            )
            self.console.print(f"the order's trace: {self.order_trace_id} ({where})")


def run_demo(url: str, data_dir: Path, console: Console) -> int:
    credentials_file = data_dir / "demo-credentials.json"
    if not credentials_file.exists():
        console.print(
            f"[red]no demo world in {data_dir}[/]: start the platform with `sandwich up --demo` first"
        )
        return 2
    walkthrough = Walkthrough(url, load_or_create_credentials(data_dir), console)
    walkthrough.traces_url = traces_url_of(data_dir)
    try:
        walkthrough.run()
    except (DemoFailed, httpx.HTTPError, AssertionError) as exc:
        console.print(f"[red]the demo stopped:[/] {exc}")
        return 1
    finally:
        walkthrough.close()
    return 0


TRACES_FILE = "traces-url"
"""Written into the data directory by `sandwich up --traces`: where Jaeger's UI is."""


def traces_url_of(data_dir: Path) -> str:
    try:
        return (data_dir / TRACES_FILE).read_text().strip()
    except OSError:
        return ""
