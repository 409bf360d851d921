"""The contract's error shape, `{"error": {"code", "message"}}`, for every answer that is not a success.

Every service installs the same handlers, so a client never sees FastAPI's default `{"detail": ...}`
and bad input never turns into a 500.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandwich.platform.db import CONNECTION_LOST
from sandwich.platform.responses import JsonResponse

log = structlog.get_logger("errors")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_field",
    429: "too_many_requests",
    503: "service_unavailable",
}


class ApiError(Exception):
    """Raised anywhere in a request to answer with the contract's error shape."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JsonResponse:
    return JsonResponse(error_body(code, message), status_code=status, headers=headers)


def validation_error_response(errors: Sequence[Any]) -> JsonResponse:
    """The contract's answer to a body that failed validation (pydantic's `errors()`): 400 for one
    that is not JSON or missing, 422 naming the first invalid fields otherwise."""
    status, code, message = _describe_validation(errors)
    return error_response(status, code, message)


def _describe_validation(errors: Sequence[Any]) -> tuple[int, str, str]:
    if any(err.get("type") == "json_invalid" for err in errors):
        return 400, "malformed_json", "The request body is not valid JSON."
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    if any(
        err.get("type") == "missing" and tuple(err.get("loc", ()))[:1] == ("body",) for err in errors
    ) and all(tuple(err.get("loc", ())) == ("body",) for err in errors):
        return 400, "missing_body", "A JSON body is required."
    return 422, "invalid_field", "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JsonResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JsonResponse:
        return validation_error_response(exc.errors())

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JsonResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    async def _database_unavailable(request: Request, exc: Exception) -> JsonResponse:
        log.warning("database_unavailable", path=request.url.path, error=repr(exc))
        return error_response(
            503,
            "database_unavailable",
            "Our database cannot be reached right now; repeat the request in a moment (with the "
            "same Idempotency-Key, if it had one).",
            {"Retry-After": "1"},
        )

    for unreachable in CONNECTION_LOST:
        app.add_exception_handler(unreachable, _database_unavailable)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JsonResponse:
        log.exception("unhandled_error", path=request.url.path, error=repr(exc))
        return error_response(500, "internal_error", "Something went wrong on our side.")
