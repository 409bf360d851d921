"""Credentials for tests that call a service in-process, as the platform's own callers would
(platform/service_auth.py): `signed_transport` adds the credential of a caller the trust table allows
for each route (the gateway for public routes), `user` the gateway's assertion of a user.

The session's keys are made once (tests/conftest.py points SANDWICH_SECRETS_DIR at them)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from sandwich.platform.identity import USER_HEADER, Identity
from sandwich.platform.service_auth import CALLER_HEADER, GATEWAY, ServiceKeys
from sandwich.platform.trust import allowed_callers


def keys_of(service: str) -> ServiceKeys:
    return ServiceKeys.load(Path(os.environ["SANDWICH_SECRETS_DIR"]), service)


class User(Mapping[str, str]):
    """The header of a user as the gateway asserts it, signed afresh whenever it is read: assertions
    expire in a minute, and a test may run minutes after its module loaded."""

    def __init__(self, user_id: str, username: str, *roles: str, food_point_id: str | None = None):
        self.identity = Identity(user_id, username, frozenset(roles), food_point_id)

    @property
    def user_id(self) -> str:
        return self.identity.user_id

    def _headers(self) -> dict[str, str]:
        return {USER_HEADER: keys_of(GATEWAY).user_assertion(self.identity)}

    def __getitem__(self, name: str) -> str:
        return self._headers()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers())

    def __len__(self) -> int:
        return 1


class SignedTransport(httpx.AsyncBaseTransport):
    """An ASGI transport whose requests carry a caller's credential, unless the test set one."""

    def __init__(self, app: object, callee: str) -> None:
        self.inner = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        self.callee = callee

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if CALLER_HEADER not in request.headers:
            allowed = allowed_callers(self.callee, request.method, request.url.path)
            caller = GATEWAY if GATEWAY in allowed or not allowed else min(allowed)
            request.headers[CALLER_HEADER] = keys_of(caller).caller_token(self.callee)
        return await self.inner.handle_async_request(request)
