"""platform/trust.py's table of calls between services is the code's: every call a service's code
makes to another service is a row, and every row is a call some code makes. The mesh's policies and
every service's credential check are built from that table, so a call missing from it would be
refused in production, and a row no code needs would be a door left open.

The calls are read from the source: each `http.request(callee, method, path, ...)` in a service's
package (a path written as an f-string becomes its template; a path passed in as a parameter is
resolved at the function's call sites in the same module). The sync flow's pushes come from
`platform/flows.SUBSCRIBERS`; the gateway's forwarding and page parts are its public routes, which
the table leaves to the gateway (`allowed_callers`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sandwich.services
from sandwich.platform.flows import SUBSCRIBERS
from sandwich.platform.trust import EVENTS, GATEWAY, INTERNAL_CALLS

pytestmark = pytest.mark.unit

SERVICES_DIR = Path(sandwich.services.__file__).parent
Call = tuple[str, str, str, str]  # caller, callee, method, path template


def _template(node: ast.expr) -> str | None:
    """A path argument as a template: literal parts kept, every `{...}` one parameter."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(str(part.value) if isinstance(part, ast.Constant) else "{x}" for part in node.values)
    return None


def _parameter_values(module: ast.Module, function: str, parameter: str) -> list[str]:
    """The templates passed as `parameter` to `function` anywhere in the module (first argument)."""
    found = []
    for node in ast.walk(module):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == function:
            if node.args and (template := _template(node.args[0])) is not None:
                found.append(template)
    return found


def _enclosing_function(module: ast.Module, target: ast.AST) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    for node in ast.walk(module):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
            n is target for n in ast.walk(node)
        ):
            return node
    return None


def calls_in_code(service: str) -> set[Call]:
    calls: set[Call] = set()
    for source in (SERVICES_DIR / service).rglob("*.py"):
        module = ast.parse(source.read_text())
        for node in ast.walk(module):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr != "request" or len(node.args) < 3:
                continue
            callee, method, path = node.args[:3]
            if not (isinstance(callee, ast.Constant) and isinstance(method, ast.Constant)):
                continue  # a callee chosen at run time: the gateway's routes and page parts
            templates = [t] if (t := _template(path)) is not None else []
            if isinstance(path, ast.Name) and (function := _enclosing_function(module, node)) is not None:
                templates = _parameter_values(module, function.name, path.id)
            assert templates, f"{source}:{node.lineno}: a path the test cannot read"
            calls.update((service, str(callee.value), str(method.value), t) for t in templates)
    return calls


def sync_pushes() -> set[Call]:
    """The sync flow's pushes: the topic's producer posts each event to every subscriber."""
    producers = {"order.events": "orders", "user.events": "users"}
    return {
        (producers[topic], push.service, "POST", push.path or EVENTS)
        for topic, pushes in SUBSCRIBERS.items()
        for push in pushes
    }


def _as_template(path: str) -> str:
    return "".join("{x}" if part.startswith("{") else part for part in _split(path))


def _split(path: str) -> list[str]:
    parts, current = [], ""
    for char in path:
        if char == "{":
            parts.append(current)
            current = "{"
        elif char == "}":
            parts.append(current + "}")
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p]


def table() -> set[Call]:
    return {(c.caller, c.callee, c.method, _as_template(c.path)) for c in INTERNAL_CALLS}


def code() -> set[Call]:
    services = [p.name for p in SERVICES_DIR.iterdir() if (p / "__init__.py").exists()]
    found = set().union(*(calls_in_code(service) for service in services))
    found |= {(a, b, m, _as_template(p)) for a, b, m, p in sync_pushes()}
    return found


def test_the_scan_finds_calls_of_every_kind() -> None:
    found = code()
    assert ("orders", "billing", "POST", "/billing/account/operate") in found  # a literal path
    assert ("delivery", "orders", "POST", "/internal/v1/orders/{x}/take") in found  # an f-string
    assert ("kitchen", "orders", "POST", "/internal/v1/orders/{x}/assign") in found  # via a parameter
    assert ("orders", "kitchen", "POST", "/internal/v1/events/{x}") in found  # a sync push


def test_every_call_the_code_makes_is_in_the_table() -> None:
    public_by_gateway = {
        call for call in code() if call[0] == GATEWAY and not call[3].startswith("/internal/")
    }
    missing = code() - table() - public_by_gateway
    assert missing == set()


def test_every_row_of_the_table_is_a_call_the_code_makes() -> None:
    assert table() - code() == set()
