"""The gateway's belief in tokens: auth's signing keys (its JWKS, refreshed at start and when an
unknown key id shows up) and each user's token version, so a token made stale by a role change is
refused."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

from sandwich.platform.http import ServiceClient, ServiceUnavailable
from sandwich.platform.identity import Identity
from sandwich.platform.tokens import InvalidToken, TokenVerifier
from sandwich.services.gateway.domain import TokenVersions

TOKEN_VERSION_TTL_SECONDS = 2.0
"""How long the gateway believes auth's token version of a user: a token made stale by a role
change is refused at most this long (plus one call to auth) after the change."""
TOKEN_VERSION_GRACE_SECONDS = 60.0
"""While auth cannot be asked, a version heard this recently is still believed."""
TOKEN_VERSION_TIMEOUT_SECONDS = 1.0


class TokenRevoked(InvalidToken):
    """A well-signed token that no longer stands: its user's roles changed, or the user is gone."""


class RevocationUnknown(Exception):
    """auth could not be asked whether a token still stands, and nothing recent is known."""


class Keys:
    """The token verifier, refreshed from auth's JWKS at start and when an unknown key id shows up."""

    def __init__(self, http: ServiceClient):
        self.http = http
        self.verifier = TokenVerifier()
        self.loaded = False
        self.versions = TokenVersions(TOKEN_VERSION_TTL_SECONDS)
        self._asking: dict[str, asyncio.Future[int | None]] = {}

    async def refresh(self) -> bool:
        if time.monotonic() - self.verifier.last_refresh < 1.0 and self.loaded:
            return False
        try:
            answer = await self.http.request("auth", "GET", "/.well-known/jwks.json", idempotent=True)
        except ServiceUnavailable:
            return False
        if answer.ok:
            self.verifier.load_jwks(answer.body)
            self.loaded = True
        return answer.ok

    async def current_version(self, user_id: str) -> int | None:
        """auth's token version of the user (None: no such user), cached per user for a moment;
        concurrent requests of one user share one call. Raises ServiceUnavailable."""
        fresh, version = self.versions.fresh(user_id)
        if fresh:
            return version
        pending = self._asking.get(user_id)
        if pending is None:
            pending = asyncio.ensure_future(self._ask_version(user_id))
            self._asking[user_id] = pending
            pending.add_done_callback(lambda _: self._asking.pop(user_id, None))
        return await asyncio.shield(pending)

    async def _ask_version(self, user_id: str) -> int | None:
        answer = await self.http.request(
            "auth",
            "GET",
            f"/internal/v1/users/{quote(user_id, safe='')}/token-version",
            idempotent=True,
            timeout=TOKEN_VERSION_TIMEOUT_SECONDS,
        )
        if answer.status == 404:
            version = None
        elif answer.ok and isinstance(answer.body, dict) and isinstance(answer.body.get("version"), int):
            version = answer.body["version"]
        else:
            raise ServiceUnavailable("auth", f"token version answered {answer.status}")
        self.versions.remember(user_id, version)
        return version

    async def check_version(self, user_id: str, token_version: int, require_fresh: bool) -> None:
        """Raise TokenRevoked when the token's version is not the user's current one (or the user is
        unknown); RevocationUnknown when auth cannot say and `require_fresh` (writes, admin routes)."""
        try:
            current = await self.current_version(user_id)
        except ServiceUnavailable as exc:
            known, current = self.versions.last_known(user_id, TOKEN_VERSION_GRACE_SECONDS)
            if not known:
                if require_fresh:
                    raise RevocationUnknown(str(exc)) from exc
                return  # a read on the signature alone while auth is away
        if current is None:
            raise TokenRevoked("the token's user does not exist")
        if token_version != current:
            raise TokenRevoked("the token was revoked (the user's roles changed): log in again")

    async def identity(self, authorization: str | None, require_fresh: bool = True) -> Identity:
        if not authorization:
            raise InvalidToken("missing bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("expected: Authorization: Bearer <token>")
        token = token.strip()
        claims = self.verifier.remembered(token)
        if claims is None:
            if not self.verifier.knows(self.verifier.key_id(token)):
                await self.refresh()
            claims = self.verifier.verify(token)
        roles = claims.get("roles", [])
        username = claims.get("username")
        version = claims.get("ver", 0)
        if not isinstance(roles, list) or not isinstance(username, str) or not isinstance(version, int):
            raise InvalidToken("token lacks identity claims")
        await self.check_version(str(claims["sub"]), version, require_fresh)
        return Identity(str(claims["sub"]), username, frozenset(map(str, roles)), claims.get("food_point_id"))
