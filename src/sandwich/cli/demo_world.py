"""The demo world: what `sandwich up --demo` puts into a fresh platform so there is something to click.

Everything goes through the gateway's public API, as a client would do it, so the demo also proves
that the public contract is enough to run the business. Every step is idempotent: `up --demo` on
the same data directory a second time finds the menu items by name, the customer already registered,
and the deposit already made (same Idempotency-Key), and adds nothing.

The passwords are random, generated once per data directory and kept in `demo-credentials.json`
there (mode 0600): there is no built-in default password, not even in the demo.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

CREDENTIALS_FILE = "demo-credentials.json"
DEFAULT_ADMIN = "admin"
CUSTOMER = "alice"
CUSTOMER_EMAIL = "alice@example.com"
CUSTOMER_FULL_NAME = "Alice Liddell"
CUSTOMER_PHONE = "+70000000001"
INITIAL_DEPOSIT = 500_000  # kopecks: 5 000 roubles
INITIAL_DEPOSIT_KEY = "demo-alice-initial"


@dataclass(frozen=True)
class Ingredient:
    name: str
    quantity: int


@dataclass(frozen=True)
class MenuItemSpec:
    name: str
    price: int  # kopecks
    ingredients: tuple[Ingredient, ...]

    def body(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "price": self.price,
            "ingredients": [{"name": i.name, "quantity": i.quantity} for i in self.ingredients],
        }


def _recipe(*pairs: tuple[str, int]) -> tuple[Ingredient, ...]:
    return tuple(Ingredient(name, quantity) for name, quantity in pairs)


DEMO_MENU: tuple[MenuItemSpec, ...] = (
    MenuItemSpec(
        "Classic BLT",
        34_900,
        _recipe(("bread", 2), ("bacon", 3), ("lettuce", 1), ("tomato", 2), ("mayonnaise", 1)),
    ),
    MenuItemSpec(
        "Club Sandwich",
        44_900,
        _recipe(("bread", 3), ("chicken", 1), ("bacon", 2), ("lettuce", 1), ("tomato", 2), ("mayonnaise", 1)),
    ),
    MenuItemSpec(
        "Caprese",
        32_900,
        _recipe(("ciabatta", 1), ("mozzarella", 2), ("tomato", 2), ("basil", 1), ("olive_oil", 1)),
    ),
    MenuItemSpec(
        "Reuben",
        49_900,
        _recipe(
            ("rye_bread", 2),
            ("corned_beef", 2),
            ("swiss_cheese", 1),
            ("sauerkraut", 1),
            ("russian_dressing", 1),
        ),
    ),
    MenuItemSpec(
        "Tuna Melt",
        37_900,
        _recipe(("bread", 2), ("tuna", 1), ("cheddar", 1), ("mayonnaise", 1), ("onion", 1)),
    ),
    MenuItemSpec(
        "Veggie Hummus",
        29_900,
        _recipe(("whole_wheat_bread", 2), ("hummus", 1), ("cucumber", 1), ("tomato", 1), ("lettuce", 1)),
    ),
)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


@dataclass(frozen=True)
class FoodPointSpec:
    """A demo food point in Moscow; its cook is `cook_<slug>`."""

    slug: str
    name: str
    address: str
    lat: float
    lon: float
    capacity: int

    def body(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "lat": self.lat,
            "lon": self.lon,
            "capacity": self.capacity,
            "accepts_delivery": True,
        }


DEMO_FOOD_POINTS: tuple[FoodPointSpec, ...] = (
    FoodPointSpec("arbat", "Sandwich Arbat", "Arbat 10, Moscow", 55.7520, 37.5930, 5),
    FoodPointSpec("kitay", "Sandwich Kitay-Gorod", "Maroseyka 2, Moscow", 55.7570, 37.6340, 5),
    FoodPointSpec(
        "zamoskvorechye", "Sandwich Zamoskvorechye", "Pyatnitskaya 25, Moscow", 55.7400, 37.6280, 3
    ),
)
DEMO_COURIERS: tuple[str, ...] = ("courier_ivan", "courier_olga")
DEMO_STOCK_PER_INGREDIENT = 1_000


def cook_name(point: FoodPointSpec) -> str:
    return f"cook_{point.slug}"


@dataclass(frozen=True)
class DemoCredentials:
    admin: Credentials
    customer: Credentials
    path: Path
    admin_from_environment: bool
    staff: dict[str, Credentials] = field(default_factory=dict)  # cooks and couriers by username

    def admin_env(self) -> dict[str, str]:
        """What the auth service must see to create this admin at its first start."""
        return {
            "SANDWICH_ADMIN_USERNAME": self.admin.username,
            "SANDWICH_ADMIN_PASSWORD": self.admin.password,
        }


@dataclass
class DemoReport:
    menu_created: list[str] = field(default_factory=list)
    menu_existing: list[str] = field(default_factory=list)
    customer_registered: bool = False
    deposit_operation_id: str | None = None
    customer_balance: int | None = None
    food_points: dict[str, str] = field(default_factory=dict)  # name -> food_point_id
    staff_ready: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class DemoSeedError(RuntimeError):
    """The gateway answered something the demo cannot continue from."""


def _new_password() -> str:
    return secrets.token_urlsafe(12)


def load_or_create_credentials(data_dir: Path, environ: Mapping[str, str] | None = None) -> DemoCredentials:
    """The demo's credentials: the admin from SANDWICH_ADMIN_USERNAME/PASSWORD when set, otherwise
    `admin` with a password generated once; the customer's password likewise generated once."""
    env = os.environ if environ is None else environ
    path = Path(data_dir).resolve() / CREDENTIALS_FILE
    stored: dict[str, dict[str, str]] = {}
    if path.exists():
        stored = json.loads(path.read_text())
    changed = False
    admin_from_env = bool(env.get("SANDWICH_ADMIN_USERNAME"))
    if admin_from_env:
        password = env.get("SANDWICH_ADMIN_PASSWORD", "")
        if not password:
            raise DemoSeedError("SANDWICH_ADMIN_USERNAME is set but SANDWICH_ADMIN_PASSWORD is not")
        admin = Credentials(env["SANDWICH_ADMIN_USERNAME"], password)
    else:
        if "admin" not in stored:
            stored["admin"] = {"username": DEFAULT_ADMIN, "password": _new_password()}
            changed = True
        admin = Credentials(stored["admin"]["username"], stored["admin"]["password"])
    if CUSTOMER not in stored:
        stored[CUSTOMER] = {"username": CUSTOMER, "password": _new_password()}
        changed = True
    customer = Credentials(stored[CUSTOMER]["username"], stored[CUSTOMER]["password"])
    staff: dict[str, Credentials] = {}
    for username in [cook_name(point) for point in DEMO_FOOD_POINTS] + list(DEMO_COURIERS):
        if username not in stored:
            stored[username] = {"username": username, "password": _new_password()}
            changed = True
        staff[username] = Credentials(username, stored[username]["password"])
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(stored, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    return DemoCredentials(admin, customer, path, admin_from_env, staff)


class _Gateway:
    """Thin client of the public API with patience for a platform that has just come up: transport
    errors and 5xx answers are retried until the deadline (every call here is idempotent)."""

    def __init__(self, base_url: str, deadline: float) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=10.0, trust_env=False)
        self.deadline = deadline

    def close(self) -> None:
        self.client.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        retry_on: Callable[[httpx.Response], bool] = lambda r: False,
    ) -> httpx.Response:
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        delay = 0.2
        while True:
            try:
                response = self.client.request(method, path, json=json_body, headers=all_headers)
                if response.status_code < 500 and not retry_on(response):
                    return response
                problem = f"{response.status_code} {response.text[:300]}"
            except httpx.TransportError as exc:
                problem = repr(exc)
            if time.monotonic() > self.deadline:
                raise DemoSeedError(f"{method} {path} kept failing: {problem}")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def login(self, who: Credentials, *, patient: bool) -> str | None:
        response = self.call(
            "POST",
            "/api/v1/auth/login",
            json_body={"username": who.username, "password": who.password},
            retry_on=(lambda r: r.status_code == 401) if patient else (lambda r: False),
        )
        if response.status_code == 401:
            return None
        _expect(response, 200, f"login as {who.username}")
        token: str = response.json()["access_token"]
        return token


def _expect(response: httpx.Response, status: int | tuple[int, ...], what: str) -> None:
    allowed = (status,) if isinstance(status, int) else status
    if response.status_code not in allowed:
        raise DemoSeedError(f"{what}: HTTP {response.status_code} {response.text[:500]}")


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""


def seed_demo_world(gateway_url: str, credentials: DemoCredentials, *, timeout: float = 60.0) -> DemoReport:
    """Create the demo menu and customer through the gateway; safe to run any number of times."""
    report = DemoReport()
    gateway = _Gateway(gateway_url, time.monotonic() + timeout)
    try:
        admin_token = _admin_token(gateway, credentials)
        _seed_menu(gateway, admin_token, report)
        _seed_customer(gateway, credentials.customer, report)
        _seed_food_points(gateway, admin_token, report)
        _seed_staff(gateway, admin_token, credentials, report)
    finally:
        gateway.close()
    return report


def _admin_token(gateway: _Gateway, credentials: DemoCredentials) -> str:
    # The admin is created by auth from the environment at its first start; a 401 right after start
    # may still be that bootstrap, so be patient, then explain the usual cause.
    token = gateway.login(credentials.admin, patient=True)
    if token is None:
        source = "the environment" if credentials.admin_from_environment else str(credentials.path)
        raise DemoSeedError(
            f"the gateway refuses the admin {credentials.admin.username!r} with the password from {source}; "
            "was this data directory first started with another admin password?"
        )
    return token


def _seed_menu(gateway: _Gateway, admin_token: str, report: DemoReport) -> None:
    response = gateway.call("GET", "/api/v1/menu", token=admin_token)
    _expect(response, 200, "read the menu")
    existing = {item["name"] for item in response.json().get("items", [])}
    for item in DEMO_MENU:
        if item.name in existing:
            report.menu_existing.append(item.name)
            continue
        created = gateway.call(
            "POST",
            "/api/v1/admin/menu",
            token=admin_token,
            json_body=item.body(),
            headers={"Idempotency-Key": f"demo-menu-{item.name.lower().replace(' ', '-')}"},
        )
        _expect(created, (200, 201), f"create menu item {item.name!r}")
        report.menu_created.append(item.name)


def _seed_customer(gateway: _Gateway, customer: Credentials, report: DemoReport) -> None:
    registered = gateway.call(
        "POST",
        "/api/v1/auth/register",
        json_body={
            "username": customer.username,
            "password": customer.password,
            "email": CUSTOMER_EMAIL,
            "phone": CUSTOMER_PHONE,
            "full_name": CUSTOMER_FULL_NAME,
        },
    )
    if registered.status_code == 201:
        report.customer_registered = True
    elif not (registered.status_code == 409 and _error_code(registered) == "username_taken"):
        _expect(registered, 201, f"register {customer.username}")
    token = gateway.login(customer, patient=report.customer_registered)
    if token is None:
        report.warnings.append(
            f"{customer.username} exists with a password other than the stored one; no deposit made"
        )
        return
    # In the async flow the billing account is opened from the UserCreated event, shortly after
    # register answers: a 404 then means "not yet".
    deposit = gateway.call(
        "POST",
        "/api/v1/billing/account/deposit",
        token=token,
        json_body={"amount": INITIAL_DEPOSIT},
        headers={"Idempotency-Key": INITIAL_DEPOSIT_KEY},
        retry_on=lambda r: r.status_code == 404,
    )
    _expect(deposit, (200, 201), f"deposit for {customer.username}")
    report.deposit_operation_id = deposit.json().get("operation_id")
    account = gateway.call("GET", "/api/v1/billing/account", token=token)
    if account.status_code == 200:
        report.customer_balance = account.json().get("balance")


def _ingredients() -> set[str]:
    return {ingredient.name for item in DEMO_MENU for ingredient in item.ingredients}


def _seed_food_points(gateway: _Gateway, admin_token: str, report: DemoReport) -> None:
    """Three food points in one city, each stocked with every ingredient of the demo menu."""
    listed = gateway.call("GET", "/api/v1/admin/food-points", token=admin_token)
    _expect(listed, 200, "list food points")
    existing = {point["name"]: point["food_point_id"] for point in listed.json().get("items", [])}
    for spec in DEMO_FOOD_POINTS:
        food_point_id = existing.get(spec.name)
        if food_point_id is None:
            created = gateway.call(
                "POST", "/api/v1/admin/food-points", token=admin_token, json_body=spec.body()
            )
            _expect(created, 201, f"create food point {spec.name!r}")
            food_point_id = created.json()["food_point_id"]
            for ingredient in sorted(_ingredients()):
                stocked = gateway.call(
                    "PUT",
                    f"/api/v1/admin/food-points/{food_point_id}/stock/{ingredient}",
                    token=admin_token,
                    json_body={"quantity": DEMO_STOCK_PER_INGREDIENT},
                )
                _expect(stocked, 200, f"stock {ingredient} at {spec.name!r}")
        report.food_points[spec.name] = food_point_id


def _register(gateway: _Gateway, who: Credentials) -> None:
    registered = gateway.call(
        "POST",
        "/api/v1/auth/register",
        json_body={
            "username": who.username,
            "password": who.password,
            "email": f"{who.username}@example.com",
        },
    )
    if not (registered.status_code == 201 or _error_code(registered) == "username_taken"):
        _expect(registered, 201, f"register {who.username}")


def _seed_staff(
    gateway: _Gateway, admin_token: str, credentials: DemoCredentials, report: DemoReport
) -> None:
    """A cook bound to each food point and two couriers, with their roles."""
    roles: dict[str, dict[str, Any]] = {
        cook_name(spec): {"roles": ["cook"], "food_point_id": report.food_points[spec.name]}
        for spec in DEMO_FOOD_POINTS
    }
    roles.update({courier: {"roles": ["courier"]} for courier in DEMO_COURIERS})
    for username, body in roles.items():
        _register(gateway, credentials.staff[username])
        granted = gateway.call(
            "PUT", f"/api/v1/admin/users/{username}/roles", token=admin_token, json_body=body
        )
        _expect(granted, 200, f"grant {body['roles']} to {username}")
        report.staff_ready.append(username)
