"""Who is calling, proved: every call between services carries the calling service's credential, and
the end user travels as an assertion signed by the gateway, never as a bare header.

- Each service has an Ed25519 key of its own. `sandwich up` makes them (`ensure_service_keys`) under
  the secrets directory (`SANDWICH_SECRETS_DIR`, default `<data dir>/secrets`), 0600 in a 0700
  folder; in a cluster they come from Secrets. A service loads its own private key and every
  service's public key (`ServiceKeys.load`): a callee can check a caller, never act as one.
- `X-Sandwich-Caller`: a short JWT (EdDSA) with `iss` = the caller, `aud` = the callee, valid 5
  minutes, made once and reused for 4, so signing costs nothing per call.
- `X-Sandwich-User`: the gateway's assertion of the verified token's user (`sub`, `username`,
  `roles`, `food_point_id`), valid 60 s, kept for 30 s per user by the gateway.
- Verified tokens are remembered until they expire, so a service checks a signature once per
  caller or user every few minutes, not per request.

Which caller may call which route is `platform/trust.py`, one table for the code and the mesh.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from starlette.types import ASGIApp, Receive, Scope, Send

from sandwich.platform.errors import error_body
from sandwich.platform.identity import Identity, InvalidCredential
from sandwich.platform.trust import allowed_callers, is_open

CALLER_HEADER = "X-Sandwich-Caller"
ALGORITHM = "EdDSA"
GATEWAY = "gateway"
USERS_AUDIENCE = "sandwich-services"
CALLER_TTL_SECONDS = 300
CALLER_REUSE_SECONDS = 240
USER_TTL_SECONDS = 60
USER_REUSE_SECONDS = 30
MAX_REMEMBERED = 20_000


class MissingServiceKeys(RuntimeError):
    """The secrets directory lacks this service's key: it cannot prove who it is, so it won't start."""


def keys_dir(secrets_dir: Path) -> Path:
    return secrets_dir / "services"


def ensure_service_keys(secrets_dir: Path, services: Iterable[str]) -> Path:
    """Make an Ed25519 key pair for every service that has none yet (0600 files, 0700 folders)."""
    folder = keys_dir(secrets_dir)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(secrets_dir, 0o700)
    os.chmod(folder, 0o700)
    for service in services:
        private_path = folder / f"{service}.key"
        if private_path.exists():
            continue
        private_pem, public_pem = new_key_pair()
        _write_private(folder / f"{service}.pub", public_pem)
        _write_private(private_path, private_pem)
    return folder


def new_key_pair() -> tuple[bytes, bytes]:
    """A service's Ed25519 key pair as PEM: (private PKCS#8, public SubjectPublicKeyInfo)."""
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def _write_private(path: Path, data: bytes) -> None:
    partial = path.with_suffix(path.suffix + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(partial, path)


@dataclass
class _Remembered:
    claims: dict[str, Any]
    expires: float


class ServiceKeys:
    """This service's private key and every service's public key."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey, public_keys: dict[str, Ed25519PublicKey]):
        self.name = name
        self._private = private_key
        self._public = public_keys
        self._made: dict[str, tuple[str, float]] = {}  # (audience or user key) -> token, reuse until
        self._verified: dict[str, _Remembered] = {}

    @classmethod
    def load(cls, secrets_dir: Path, name: str) -> ServiceKeys:
        folder = keys_dir(secrets_dir)
        private_path = folder / f"{name}.key"
        try:
            private = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
        except FileNotFoundError:
            raise MissingServiceKeys(
                f"{private_path} is missing: {name} cannot prove who it is to the other services. "
                "`sandwich up` makes the keys; elsewhere set SANDWICH_SECRETS_DIR to the folder that "
                "holds services/<name>.key and every service's services/<name>.pub"
            ) from None
        assert isinstance(private, Ed25519PrivateKey)
        public: dict[str, Ed25519PublicKey] = {}
        for path in sorted(folder.glob("*.pub")):
            key = serialization.load_pem_public_key(path.read_bytes())
            if isinstance(key, Ed25519PublicKey):
                public[path.stem] = key
        return cls(name, private, public)

    # -- making ------------------------------------------------------------------------------------
    def caller_token(self, callee: str) -> str:
        """This service's credential for calls to `callee` (reused while fresh)."""
        return self._reused(f"caller:{callee}", CALLER_TTL_SECONDS, CALLER_REUSE_SECONDS, {"aud": callee})

    def user_assertion(self, identity: Identity) -> str:
        """The gateway's assertion of a verified user, for the services behind it."""
        roles = sorted(identity.roles)
        claims = {
            "aud": USERS_AUDIENCE,
            "sub": identity.user_id,
            "username": identity.username,
            "roles": roles,
            "food_point_id": identity.food_point_id,
        }
        key = f"user:{identity.user_id}:{identity.username}:{','.join(roles)}:{identity.food_point_id}"
        return self._reused(key, USER_TTL_SECONDS, USER_REUSE_SECONDS, claims)

    def _reused(self, key: str, ttl: int, reuse: int, claims: dict[str, Any]) -> str:
        now = time.time()
        made = self._made.get(key)
        if made is not None and made[1] > now:
            return made[0]
        token = jwt.encode(
            {**claims, "iss": self.name, "iat": int(now), "exp": int(now) + ttl},
            self._private,
            algorithm=ALGORITHM,
        )
        if len(self._made) >= MAX_REMEMBERED:
            self._made.clear()
        self._made[key] = (token, now + reuse)
        return token

    # -- checking ----------------------------------------------------------------------------------
    def verify_caller(self, token: str | None) -> str:
        """The name of the service that made `token` for this service; InvalidCredential if none."""
        claims = self._verified_claims(token, audience=self.name)
        return str(claims["iss"])

    def verify_user(self, token: str | None) -> Identity:
        """The user the gateway asserted; InvalidCredential unless the gateway signed it."""
        claims = self._verified_claims(token, audience=USERS_AUDIENCE)
        if claims.get("iss") != GATEWAY:
            raise InvalidCredential("only the gateway asserts users")
        roles = claims.get("roles")
        username = claims.get("username")
        if not isinstance(roles, list) or not isinstance(username, str):
            raise InvalidCredential("the user assertion lacks its claims")
        food_point = claims.get("food_point_id")
        return Identity(str(claims["sub"]), username, frozenset(map(str, roles)), food_point or None)

    def _verified_claims(self, token: str | None, *, audience: str) -> dict[str, Any]:
        if not token:
            raise InvalidCredential("no credential")
        now = time.time()
        remembered = self._verified.get(token)
        if remembered is not None and remembered.expires > now and remembered.claims.get("aud") == audience:
            return remembered.claims
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
            issuer = str(unverified.get("iss", ""))
            public = self._public.get(issuer)
            if public is None:
                raise InvalidCredential(f"unknown issuer {issuer!r}")
            claims: dict[str, Any] = jwt.decode(
                token, public, algorithms=[ALGORITHM], audience=audience, options={"require": ["exp", "iss"]}
            )
        except jwt.PyJWTError as exc:
            raise InvalidCredential(str(exc)) from exc
        if len(self._verified) >= MAX_REMEMBERED:
            self._verified.clear()
        self._verified[token] = _Remembered(claims, float(claims["exp"]))
        return claims


class RequireCaller:
    """ASGI middleware of every service behind the gateway: a request without a valid credential of
    a calling service is 401, one from a service that is not among the route's callers
    (platform/trust.py) is 403. Health and metrics stay open to probes."""

    def __init__(self, app: ASGIApp, keys: ServiceKeys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        token = None
        for name, value in scope["headers"]:
            if name == _CALLER_HEADER_BYTES:
                token = value.decode("latin-1")
                break
        try:
            caller = self.keys.verify_caller(token)
        except InvalidCredential:
            await _refuse(
                send, 401, "unauthenticated_caller", "This service answers services that prove who they are."
            )
            return
        if caller not in allowed_callers(self.keys.name, scope["method"], scope["path"]):
            await _refuse(
                send, 403, "caller_not_allowed", f"{caller} may not call this route of {self.keys.name}."
            )
            return
        await self.app(scope, receive, send)


_CALLER_HEADER_BYTES = CALLER_HEADER.lower().encode()


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    body = orjson.dumps(error_body(code, message))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
