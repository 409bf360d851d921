"""The documents in docs/ against the code they describe, so that neither drifts from the other.

- docs/asyncapi.yaml: its channels name every topic of `sandwich.platform.events` (and their
  dead-letter topics), its messages every event type; the envelope and each payload have the
  fields of the event models; its consumers are the ones the services declare, flow by flow.
  (Whether it is a valid AsyncAPI document is for the parser: `./dev test` runs
  docs/asyncapi/validate.mjs before pytest.)
- docs/api.md: every `| METHOD | /path |` row is served by the gateway, per its own OpenAPI
  document built in-process, and every route that document names has a row; every table row of the
  binding contract ../shared/API.md, when it lies beside the repository, is in docs/api.md.

Nothing here starts a server: the services' apps are built (not started) with a database URL that
is never dialled, and the gateway's /openapi.json is asked through ASGI with each service's own
document handed over in place of the HTTP calls the gateway would make.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

import httpx
import pytest
import yaml
from fastapi import FastAPI
from pydantic import BaseModel

from sandwich.platform import events
from sandwich.platform.bus.base import dead_letter_topic
from sandwich.platform.http import Response
from sandwich.platform.settings import SERVICES, get_settings
from sandwich.platform.trust import BUS_CONSUMES, BUS_PUBLISHES

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
ASYNCAPI = ROOT / "docs" / "asyncapi.yaml"
API_MD = ROOT / "docs" / "api.md"
SHARED_API_MD = ROOT.parent / "shared" / "API.md"

PLANNED = "x-sandwich-status"
"""The mark of what the document describes ahead of the code (value `planned`)."""

DEAD_LETTER_MESSAGE = "DeadLetter"
PAYLOAD_MODEL_OF = {"OrderUpdateMessage": "OrderEvent"}
"""Messages whose payload is another event's model (ADR 002's OrderUpdateMessage carries an OrderEvent)."""
UNUSED_DATABASE_URL = "postgresql://nobody@127.0.0.1:9/unused"
"""Lets a service's app be built: nothing here connects to it."""


# --- shared helpers ---------------------------------------------------------------------------------


def code_topics() -> set[str]:
    return {
        value for name, value in vars(events).items() if name.startswith("TOPIC_") and isinstance(value, str)
    }


def code_event_types() -> set[str]:
    """Every event type `events` declares: its UPPER_CASE constants whose value is one CamelCase word."""
    return {
        value
        for name, value in vars(events).items()
        if name.isupper()
        and not name.startswith("TOPIC_")
        and isinstance(value, str)
        and re.fullmatch(r"[A-Z][a-z]+(?:[A-Z][a-z]+)+", value)
    }


def is_planned(node: dict[str, Any]) -> bool:
    return node.get(PLANNED) == "planned"


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    return document


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """`node`, or what its local `$ref` points at."""
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = document
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def object_schema(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any] | None:
    """The object schema (one with `properties`) a property's schema describes: itself, its `$ref`,
    its `items`, or the first of its `oneOf`/`anyOf`/`allOf` that is one."""
    node = resolve(document, node)
    if "properties" in node:
        return node
    if isinstance(node.get("items"), dict):
        return object_schema(document, node["items"])
    for key in ("oneOf", "anyOf", "allOf"):
        for option in node.get(key, ()):
            found = object_schema(document, option)
            if found is not None:
                return found
    return None


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside a field's annotation (`X`, `X | None`, `list[X]`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (list, Union, UnionType) or isinstance(annotation, UnionType):
        for argument in get_args(annotation):
            found = nested_model(argument)
            if found is not None:
                return found
    return None


def compare_fields(
    document: dict[str, Any], model: type[BaseModel], schema: dict[str, Any], where: str
) -> Iterator[str]:
    """What differs between a model's fields and a schema's properties, recursively."""
    properties: dict[str, Any] = schema.get("properties", {})
    fields = model.model_fields
    for name in sorted(set(fields) - set(properties)):
        yield f"{where}: the code's field {name!r} is not documented"
    for name in sorted(set(properties) - set(fields)):
        if not is_planned(properties[name]):
            yield f"{where}: documents {name!r}, which {model.__name__} has not (mark it planned if it is)"
    required = {name for name, field in fields.items() if field.is_required()}
    documented_required = set(schema.get("required", ()))
    if required != documented_required:
        yield f"{where}: required {sorted(documented_required)}, the code's {sorted(required)}"
    for name, field in fields.items():
        inner = nested_model(field.annotation)
        if inner is None or name not in properties:
            continue
        inner_schema = object_schema(document, properties[name])
        if inner_schema is None:
            yield f"{where}.{name}: documented without its fields ({inner.__name__})"
            continue
        yield from compare_fields(document, inner, inner_schema, f"{where}.{name}")


@pytest.fixture
def flow_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Settings read afresh from the environment this test sets, restored afterwards."""
    monkeypatch.setenv("DATABASE_URL", UNUSED_DATABASE_URL)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def build_app(service: str) -> FastAPI:
    """A service's app as `sandwich serve` builds it, not started (no database, no broker)."""
    module = importlib.import_module(f"sandwich.services.{service}.app")
    app: FastAPI = module.create_app()
    return app


# --- docs/asyncapi.yaml -----------------------------------------------------------------------------


def test_asyncapi_channels_name_every_topic_and_its_dead_letter_topic(asyncapi: dict[str, Any]) -> None:
    addresses = {channel["address"] for channel in asyncapi["channels"].values()}
    topics = code_topics()
    assert topics, "no TOPIC_ constants found in sandwich.platform.events"
    expected = topics | {dead_letter_topic(topic) for topic in topics}
    assert sorted(expected - addresses) == [], "topics of the code missing from docs/asyncapi.yaml"
    assert sorted(addresses - expected) == [], "channels of docs/asyncapi.yaml the code has no topic for"


def test_asyncapi_messages_name_every_event_type(asyncapi: dict[str, Any]) -> None:
    messages: dict[str, Any] = asyncapi["components"]["messages"]
    documented = {message["name"] for message in messages.values()} - {DEAD_LETTER_MESSAGE}
    types = code_event_types()
    assert types, "no event types found in sandwich.platform.events"
    assert sorted(types - documented) == [], "event types of the code missing from docs/asyncapi.yaml"
    for message in messages.values():
        name = message["name"]
        if name != DEAD_LETTER_MESSAGE and name not in types:
            assert is_planned(message), f"{name} is documented but not in the code: mark it planned"
    for key, message in messages.items():
        assert key == message["name"], f"components.messages.{key} is named {message['name']}"


def test_asyncapi_channels_carry_their_own_event_types(asyncapi: dict[str, Any]) -> None:
    """A topic's channel lists the messages published on it; its dead-letter channel the same names."""
    for channel in asyncapi["channels"].values():
        messages = channel["messages"]
        for name, ref in messages.items():
            message = resolve(asyncapi, ref)
            if channel["address"].endswith(dead_letter_topic("")):
                assert message["name"] == DEAD_LETTER_MESSAGE, channel["address"]
            else:
                assert message["name"] == name, channel["address"]


def test_asyncapi_envelope_has_the_fields_of_the_code(asyncapi: dict[str, Any]) -> None:
    schema = asyncapi["components"]["schemas"]["Envelope"]
    problems = list(compare_fields(asyncapi, events.Envelope, schema, "Envelope"))
    # The envelope's fields all have defaults in the model (a producer fills them), yet every
    # envelope on the wire carries each of them: the document says they are required.
    problems = [p for p in problems if "required" not in p]
    assert set(schema["required"]) == set(events.Envelope.model_fields)
    assert problems == []
    assert schema["properties"]["schema_version"]["const"] == events.SCHEMA_VERSION


def test_asyncapi_payloads_have_the_fields_of_the_event_models(asyncapi: dict[str, Any]) -> None:
    problems: list[str] = []
    checked = 0
    for message in asyncapi["components"]["messages"].values():
        name = message["name"]
        if name == DEAD_LETTER_MESSAGE:
            continue
        model = getattr(events, PAYLOAD_MODEL_OF.get(name, name), None)
        if model is None:
            assert is_planned(message), f"{name}: the code has no model of its payload"
            continue
        envelope = message["payload"]["allOf"]
        assert resolve(asyncapi, envelope[0]) is asyncapi["components"]["schemas"]["Envelope"]
        own = envelope[1]["properties"]
        assert own["type"]["const"] == name
        payload = object_schema(asyncapi, own["payload"])
        assert payload is not None, name
        problems.extend(compare_fields(asyncapi, model, payload, name))
        checked += 1
    assert checked >= 5
    assert problems == []


def test_asyncapi_order_statuses_include_the_code_s(asyncapi: dict[str, Any]) -> None:
    from sandwich.services.orders.domain import OrderStatus

    documented = set(asyncapi["components"]["schemas"]["OrderStatus"]["enum"])
    assert sorted({status.value for status in OrderStatus} - documented) == []


@pytest.mark.parametrize("flow", ["hybrid", "async"])
def test_asyncapi_consumers_are_the_ones_the_services_declare(
    asyncapi: dict[str, Any], flow_env: pytest.MonkeyPatch, flow: str
) -> None:
    """Every `service.consume(topic, group)` of the broker flows is a receive operation of the
    document tagged with that service, on that topic's channel, with that group; and every receive
    operation the document has is declared in some flow (the planned ones by service and topic)."""
    flow_env.setenv("SANDWICH_FLOW", flow)
    declared: set[tuple[str, str, str]] = set()
    for name in SERVICES:
        service = build_app(name).state.service
        declared |= {(name, spec.topic, spec.consumer) for spec in service.consumers}
    documented: set[tuple[str, str, str]] = set()
    planned: set[tuple[str, str]] = set()
    for key, operation in asyncapi["operations"].items():
        if operation["action"] != "receive":
            continue
        (tag,) = [t["name"] for t in operation["tags"]]
        topic = resolve(asyncapi, operation["channel"])["address"]
        if is_planned(operation):
            planned.add((tag, topic))
            continue
        (group,) = operation["bindings"]["kafka"]["groupId"]["enum"]
        assert operation["bindings"]["nats"]["queue"] == group, key
        documented.add((tag, topic, group))
    missing = {d for d in declared - documented if (d[0], d[1]) not in planned}
    assert sorted(missing) == [], f"{flow}: consumers the services declare, missing from the document"
    if flow == "async":  # the flow with every topic: nothing documented may be unknown to the code
        get_settings.cache_clear()
        flow_env.setenv("SANDWICH_FLOW", "hybrid")
        for name in SERVICES:
            service = build_app(name).state.service
            declared |= {(name, spec.topic, spec.consumer) for spec in service.consumers}
        assert sorted(documented - declared) == [], "consumers documented that no service declares"


def test_the_brokers_permissions_are_what_the_document_and_the_code_say(
    asyncapi: dict[str, Any], flow_env: pytest.MonkeyPatch
) -> None:
    """platform/trust.py's BUS_PUBLISHES and BUS_CONSUMES become the broker's permissions per service:
    each must be exactly the document's send operations (dead letters aside) and the consumers the
    services declare in the broker flows, or a service would be refused what it needs, or allowed
    what it does not."""
    documented: dict[str, set[str]] = {}
    for operation in asyncapi["operations"].values():
        topic = resolve(asyncapi, operation["channel"])["address"]
        if operation["action"] != "send" or is_planned(operation) or topic.endswith(".dlq"):
            continue
        for tag in operation["tags"]:
            documented.setdefault(tag["name"], set()).add(topic)
    assert {name: set(topics) for name, topics in BUS_PUBLISHES.items()} == documented
    declared: dict[str, set[tuple[str, str]]] = {}
    for flow in ("hybrid", "async"):
        get_settings.cache_clear()
        flow_env.setenv("SANDWICH_FLOW", flow)
        for name in SERVICES:
            for spec in build_app(name).state.service.consumers:
                declared.setdefault(name, set()).add((spec.topic, spec.consumer))
    assert {name: set(pairs) for name, pairs in BUS_CONSUMES.items()} == declared


# --- docs/api.md ------------------------------------------------------------------------------------

ROW = re.compile(r"^\|\s*(GET|POST|PUT|PATCH|DELETE)\s*\|\s*(/\S*)\s*\|")
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def normalized(path: str) -> str:
    """A path with its parameters unnamed: the contract says `{id}`, the code `{order_id}`."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def route_rows(text: str) -> set[tuple[str, str]]:
    return {(m[1], normalized(m[2])) for line in text.splitlines() if (m := ROW.match(line))}


def table_rows(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("|")]


class ServicesDocuments:
    """Stands in for the gateway's HTTP client: answers `GET /openapi.json` of each service with
    the document its app builds, as the running service would."""

    def __init__(self, documents: dict[str, dict[str, Any]]):
        self.documents = documents
        self.asked: list[str] = []

    async def request(self, service: str, method: str, path: str, **_: Any) -> Response:
        assert (method, path) == ("GET", "/openapi.json"), (service, method, path)
        self.asked.append(service)
        return Response(200, self.documents[service])

    async def close(self) -> None:
        return None


@pytest.fixture
async def gateway_openapi(flow_env: pytest.MonkeyPatch) -> dict[str, Any]:
    """The gateway's public /openapi.json, asked through ASGI of an app built in-process."""
    documents = {name: build_app(name).openapi() for name in SERVICES if name != "gateway"}
    gateway = build_app("gateway")
    http = ServicesDocuments(documents)
    gateway.state.service.context.http = http  # the gateway's client to the services (GatewayContext)
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        answer = await client.get("/openapi.json")
    assert answer.status_code == 200, answer.text
    assert http.asked, "the gateway assembled its document without asking the services"
    document: dict[str, Any] = answer.json()
    return document


def gateway_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), normalized(path))
        for path, operations in document["paths"].items()
        for method in operations
        if method in HTTP_METHODS
    }


def test_api_md_rows_are_routes_of_the_gateway(gateway_openapi: dict[str, Any]) -> None:
    rows = route_rows(API_MD.read_text(encoding="utf-8"))
    assert len(rows) >= 25, "docs/api.md lost its route tables"
    assert sorted(rows - gateway_routes(gateway_openapi)) == [], (
        "rows of docs/api.md the gateway does not serve"
    )


def test_every_public_route_of_the_gateway_is_in_api_md(gateway_openapi: dict[str, Any]) -> None:
    rows = route_rows(API_MD.read_text(encoding="utf-8"))
    missing = gateway_routes(gateway_openapi) - rows
    assert sorted(missing) == [], "routes in the gateway's /openapi.json without a row in docs/api.md"


def test_api_md_holds_every_row_of_the_binding_contract() -> None:
    if not SHARED_API_MD.is_file():
        pytest.skip(
            f"{SHARED_API_MD} is not beside the repository (a public clone): docs/api.md is the contract"
        )
    ours = set(table_rows(API_MD.read_text(encoding="utf-8")))
    theirs = table_rows(SHARED_API_MD.read_text(encoding="utf-8"))
    assert theirs, f"{SHARED_API_MD} has no table rows"
    assert [row for row in theirs if row not in ours] == [], (
        "rows of ../shared/API.md missing from docs/api.md"
    )
