"""The gateway's OpenAPI document: the public contract, assembled from the services' own documents.

Each service describes its routes; the gateway keeps only the paths and methods of its route table,
prefixes schema names with the service (two services may both have an `OrderOut`), and adds the
bearer security scheme. It is cached once every service has answered.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from sandwich.platform.app import Service
from sandwich.platform.http import ServiceUnavailable
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
                "401": {"description": "No valid bearer token"},
            },
        }
    }
}


def _prefixed(document: dict[str, Any], service: str) -> dict[str, Any]:
    raw = orjson.dumps(document).decode()
    raw = re.sub(r'"#/components/schemas/([^"]+)"', rf'"#/components/schemas/{service}_\1"', raw)
    result: dict[str, Any] = orjson.loads(raw)
    return result


async def public_openapi(service: Service) -> dict[str, Any]:
    cached: dict[str, Any] | None = service.state.get("openapi")
    if cached is not None:
        return cached
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    complete = True
    for name in sorted({route.service for route in ROUTES}):
        try:
            answer = await service.http.request(name, "GET", "/openapi.json", idempotent=True)
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
                paths.setdefault(route.template, {})[method.lower()] = operation
    paths.update(GATEWAY_PATHS)
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
        service.state["openapi"] = result
    return result
