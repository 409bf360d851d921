"""The gateway's OpenAPI document: the public contract, assembled from the services' own documents.

Each service describes its routes; the gateway keeps only the paths and methods of its route table,
prefixes schema names with the service (two services may both have an `OrderOut`), and adds the
bearer security scheme. It is cached once every service has answered.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from sandwich.platform.http import ServiceUnavailable
from sandwich.services.gateway.context import GatewayContext
from sandwich.services.gateway.domain import ROUTES, Access

# The routes the gateway answers itself (the orders page composes four services' answers).
GATEWAY_PATHS: dict[str, Any] = {
    "/api/v1/pages/orders": {
        "get": {
            "summary": "The orders page in one call",
            "description": "The caller's profile, orders, basket and the menu, fetched side by side. A part "
            "whose service is down is null and named in `unavailable`; the page still answers 200.",
            "security": [{"bearer": []}],
            "responses": {
                "200": {
                    "description": "The page",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["user", "orders", "basket", "menu", "unavailable"],
                                "properties": {
                                    "user": {"type": ["object", "null"]},
                                    "orders": {"type": ["object", "null"]},
                                    "basket": {"type": ["object", "null"]},
                                    "menu": {"type": ["object", "null"]},
                                    "unavailable": {"type": "array", "items": {"type": "string"}},
                                },
                            }
                        }
                    },
                },
            },
        }
    },
    "/api/v1/admin/system": {
        "get": {
            "summary": "The platform at a glance (admin)",
            "description": "Every service's liveness and readiness, the flow and broker in use, orders per "
            "status, and per service its requests, share of 5xx answers, event lag p99 and outbox backlog, "
            "read from the services' own health endpoints and metrics. A service that does not answer is "
            "shown as not live; the overview still answers 200.",
            "security": [{"bearer": []}],
            "responses": {
                "200": {
                    "description": "The overview",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["flow", "broker", "services", "orders_by_status"],
                                "properties": {
                                    "flow": {"type": "string", "enum": ["hybrid", "sync", "async"]},
                                    "broker": {"type": "string", "enum": ["nats", "kafka", "none"]},
                                    "services": {"type": "array", "items": {"type": "object"}},
                                    "orders_by_status": {
                                        "type": "object",
                                        "additionalProperties": {"type": "integer"},
                                    },
                                },
                            }
                        }
                    },
                },
            },
        }
    },
}


ERROR_SCHEMA_NAME = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every answer that is not a success (docs/api.md, Conventions).",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "snake_case, e.g. `invalid_field`"},
                "message": {"type": "string"},
            },
        }
    },
}
_ERROR_DESCRIPTIONS = {
    "400": "Malformed: the body is not JSON, or a JSON body is missing",
    "401": "No bearer token, or an expired, wrongly signed or revoked one",
    "403": "The caller's role does not allow it, or it is not the caller's",
    "404": "Unknown: nothing has this id (or it is someone else's)",
    "409": "Conflict: a taken name, an illegal state transition, or an Idempotency-Key reused",
    "422": "An invalid field (code `invalid_field` or a more specific one)",
    "429": "Throttled (with `Retry-After`)",
    "503": "The service behind the route (or one it needs) is unavailable; try again",
}
_ROLE_ROUTES = ("/api/v1/kitchen/", "/api/v1/delivery/", "/api/v1/user/{username}")


def error_statuses(template: str, method: str, access: Access, operation: dict[str, Any]) -> list[str]:
    """The error statuses an operation of the route table can answer (docs/api.md's conventions)."""
    writes = method.upper() in ("POST", "PUT", "PATCH", "DELETE")
    statuses = {"503"}
    if access is not Access.PUBLIC or template == "/api/v1/auth/login":
        statuses.add("401")
    if access is Access.ADMIN or template.startswith(_ROLE_ROUTES):
        statuses.add("403")
    if "{" in template:
        statuses.add("404")
    if writes and template != "/api/v1/auth/login":
        statuses.add("409")
    if writes or operation.get("parameters") or operation.get("requestBody"):
        statuses.add("422")
    if operation.get("requestBody"):
        statuses.add("400")
    if template in ("/api/v1/auth/login", "/api/v1/auth/register"):
        statuses.add("429")
    return sorted(statuses)


def with_error_answers(
    template: str, method: str, access: Access, operation: dict[str, Any]
) -> dict[str, Any]:
    """The operation with its error answers documented in the contract's shape, FastAPI's own 422
    (`{"detail": ...}`, which no service answers) replaced."""
    responses = dict(operation.get("responses", {}))
    for status in error_statuses(template, method, access, operation):
        responses[status] = {
            "description": _ERROR_DESCRIPTIONS[status],
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}}
            },
        }
    return {**operation, "responses": responses}


def _drop_fastapi_validation_schemas(paths: dict[str, Any], schemas: dict[str, Any]) -> None:
    """FastAPI's `HTTPValidationError`/`ValidationError` schemas, which no operation refers to once
    its 422 is the contract's error."""
    used = orjson.dumps(paths).decode()
    for name in [n for n in schemas if n.endswith(("_HTTPValidationError", "_ValidationError"))]:
        if f'/{name}"' not in used:
            del schemas[name]


def _prefixed(document: dict[str, Any], service: str) -> dict[str, Any]:
    raw = orjson.dumps(document).decode()
    raw = re.sub(r'"#/components/schemas/([^"]+)"', rf'"#/components/schemas/{service}_\1"', raw)
    result: dict[str, Any] = orjson.loads(raw)
    return result


async def public_openapi(context: GatewayContext) -> dict[str, Any]:
    """The public document; kept in the context once every service has answered (until then it is
    assembled again on each request, so a service that was away shows up once it is back)."""
    if context.openapi is not None:
        return context.openapi
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    complete = True
    for name in sorted({route.service for route in ROUTES}):
        try:
            answer = await context.http.request(name, "GET", "/openapi.json", idempotent=True)
        except ServiceUnavailable:
            complete = False
            continue
        if not answer.ok:
            complete = False
            continue
        document = _prefixed(answer.body, name)
        for schema_name, schema in document.get("components", {}).get("schemas", {}).items():
            schemas[f"{name}_{schema_name}"] = schema
        for route in ROUTES:
            if route.service != name or route.template not in document.get("paths", {}):
                continue
            operations = document["paths"][route.template]
            for method in route.methods:
                operation = operations.get(method.lower())
                if operation is None:
                    continue
                if route.access is not Access.PUBLIC:
                    operation["security"] = [{"bearer": []}]
                operation = with_error_answers(route.template, method, route.access, operation)
                paths.setdefault(route.template, {})[method.lower()] = operation
    for template, operations in GATEWAY_PATHS.items():
        for method, operation in operations.items():
            paths.setdefault(template, {})[method] = with_error_answers(
                template, method, Access.USER, operation
            )
    _drop_fastapi_validation_schemas(paths, schemas)
    schemas[ERROR_SCHEMA_NAME] = ERROR_SCHEMA
    result = {
        "openapi": "3.1.0",
        "info": {"title": "sandwich public API", "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
    if complete:
        context.openapi = result
    return result
