"""The rules that keep the house readable (docs/architecture.md, "Rules of the house"), checked on
every module under src/ by reading its imports (those inside functions too):

1. no service imports another service: they meet only over HTTP and events;
2. the platform imports no service (it is the same for all of them);
3. a domain module imports only the standard library and its own service's domain;
4. only wiring knows the interaction style: within services, only `app.py` names `Flow`, `.flow`
   or `.uses_broker`; within the platform, only its wiring (app.py, settings.py, flows.py);
5. no module passes 500 lines.

Each rule is a function from one module's source to its violations, so the tests below also show
that each rule catches what it is for (a rule that could never fail would prove nothing).
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import sandwich

pytestmark = pytest.mark.unit

PACKAGE = Path(sandwich.__file__).parent
SRC = PACKAGE.parent
PLATFORM_WIRING = {"app.py", "settings.py", "flows.py"}
FLOW_ATTRIBUTES = {"flow", "uses_broker"}
STANDARD_LIBRARY = set(sys.stdlib_module_names) | {"__future__"}


@dataclass(frozen=True)
class Module:
    """A module of the package: its dotted name, its path under src/ and its syntax tree."""

    name: str
    path: str
    tree: ast.Module

    @property
    def parts(self) -> list[str]:
        return self.name.split(".")

    @property
    def service(self) -> str | None:
        parts = self.parts
        return parts[2] if len(parts) > 2 and parts[1] == "services" else None

    @property
    def file_name(self) -> str:
        return Path(self.path).name


def module_of(path: Path) -> Module:
    relative = path.relative_to(SRC)
    dotted = ".".join(relative.with_suffix("").parts)
    if dotted.endswith(".__init__"):
        dotted = dotted.removesuffix(".__init__")
    return Module(dotted, str(relative), ast.parse(path.read_text(encoding="utf-8"), str(relative)))


def source_module(name: str, source: str) -> Module:
    """A module made up for a test: `name` as if it were that module, with `source` as its code."""
    return Module(name, name.replace(".", "/") + ".py", ast.parse(source))


@functools.cache
def every_module() -> list[Module]:
    return [module_of(path) for path in sorted(PACKAGE.rglob("*.py")) if "migrations" not in path.parts]


def imported(module: Module) -> Iterator[tuple[str, int]]:
    """Every module `module` imports (absolute names), with its line."""
    package = module.parts if module.path.endswith("__init__.py") else module.parts[:-1]
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target, node.lineno
            for alias in node.names:  # `from sandwich.services import orders` names a module too
                yield f"{target}.{alias.name}", node.lineno


def service_of(dotted: str) -> str | None:
    parts = dotted.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["sandwich", "services"] else None


def another_service(module: Module) -> list[str]:
    if module.service is None:
        return []
    return [
        f"{module.path}:{line} imports {name}"
        for name, line in imported(module)
        if (other := service_of(name)) is not None and other != module.service
    ]


def platform_imports_a_service(module: Module) -> list[str]:
    if module.parts[:2] != ["sandwich", "platform"]:
        return []
    return [f"{module.path}:{line} imports {name}" for name, line in imported(module) if service_of(name)]


def domain_imports_more_than_the_standard_library(module: Module) -> list[str]:
    if module.service is None or module.file_name != "domain.py":
        return []
    own_domain = f"sandwich.services.{module.service}.domain"
    return [
        f"{module.path}:{line} imports {name}"
        for name, line in imported(module)
        if name.split(".")[0] not in STANDARD_LIBRARY and not name.startswith(own_domain)
    ]


def knows_the_flow(module: Module) -> list[str]:
    if module.service is not None:
        allowed = module.file_name == "app.py"
    elif module.parts[:2] == ["sandwich", "platform"]:
        allowed = len(module.parts) == 3 and module.file_name in PLATFORM_WIRING
    else:
        allowed = True  # the tools that choose a flow: the CLI, the supervisor, the benchmark
    if allowed:
        return []
    found = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Name) and node.id == "Flow":
            found.append(f"{module.path}:{node.lineno} names Flow")
        elif isinstance(node, ast.Attribute) and node.attr in FLOW_ATTRIBUTES:
            found.append(f"{module.path}:{node.lineno} reads .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and any(alias.name == "Flow" for alias in node.names):
            found.append(f"{module.path}:{node.lineno} imports Flow")
    return found


RULES = [
    another_service,
    platform_imports_a_service,
    domain_imports_more_than_the_standard_library,
    knows_the_flow,
]


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.__name__)
def test_every_module_keeps_the_rule(rule: object) -> None:
    modules = every_module()
    assert len(modules) > 100, "the package's modules were not found"
    violations = [found for module in modules for found in rule(module)]  # type: ignore[operator]
    assert violations == []


def test_a_service_importing_another_is_caught_however_it_imports() -> None:
    assert another_service(
        source_module("sandwich.services.kitchen.api", "import sandwich.services.orders.domain")
    )
    assert another_service(
        source_module("sandwich.services.kitchen.api", "def f():\n    from sandwich.services import orders")
    )
    assert another_service(
        source_module("sandwich.services.kitchen.api", "from ..orders.domain import Order")
    )  # relative, out of its own package
    assert not another_service(source_module("sandwich.services.kitchen.api", "from .domain import Kitchen"))
    assert not another_service(
        source_module("sandwich.services.kitchen.api", "from sandwich.platform import db")
    )


def test_the_platform_importing_a_service_is_caught() -> None:
    assert platform_imports_a_service(
        source_module("sandwich.platform.outbox", "from sandwich.services.orders.storage import order_view")
    )
    assert not platform_imports_a_service(
        source_module("sandwich.platform.outbox", "from sandwich.platform import db")
    )


def test_a_domain_importing_a_framework_a_driver_or_the_platform_is_caught() -> None:
    for source in (
        "import fastapi",
        "from sqlalchemy import text",
        "import asyncpg",
        "from sandwich.platform import db",
    ):
        assert domain_imports_more_than_the_standard_library(
            source_module("sandwich.services.orders.domain", source)
        )
    assert not domain_imports_more_than_the_standard_library(
        source_module("sandwich.services.orders.domain", "from dataclasses import dataclass\nimport math")
    )


def test_knowing_the_flow_outside_wiring_is_caught() -> None:
    assert knows_the_flow(source_module("sandwich.services.orders.commands", "x = settings.flow"))
    assert knows_the_flow(
        source_module("sandwich.services.orders.commands", "from sandwich.platform.settings import Flow")
    )
    assert knows_the_flow(
        source_module("sandwich.services.users.api", "if service.settings.uses_broker: pass")
    )
    assert knows_the_flow(source_module("sandwich.platform.outbox", "x = settings.flow"))
    assert not knows_the_flow(
        source_module("sandwich.services.orders.app", "x = settings.flow is Flow.ASYNC")
    )
    assert not knows_the_flow(source_module("sandwich.services.web.i18n", "LABELS = {'flow': 'Flow'}"))


ROOM_LIMIT = 500
"""Lines a module under src/ may have at most (the house aims at 400): past it, split by topic."""


def test_no_module_passes_the_room_limit() -> None:
    sizes = {
        str(path.relative_to(SRC)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.parts
    }
    assert len(sizes) > 100
    assert {path: lines for path, lines in sizes.items() if lines > ROOM_LIMIT} == {}
