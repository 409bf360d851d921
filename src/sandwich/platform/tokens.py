"""JWT signing (auth) and verification (gateway) with Ed25519 (EdDSA) keys published as JWKS.

Only EdDSA is accepted: a token with `alg: none` or an HMAC/RSA header is rejected before any key is
looked at, which closes the classic algorithm-confusion holes.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ALGORITHM = "EdDSA"
ISSUER = "sandwich-auth"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_pem: bytes

    @classmethod
    def generate(cls) -> SigningKey:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cls(kid=uuid.uuid4().hex, private_pem=pem)

    def private_key(self) -> Ed25519PrivateKey:
        key = serialization.load_pem_private_key(self.private_pem, password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return key

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.algorithms.OKPAlgorithm.to_jwk(
            self.private_key().public_key(), as_dict=True
        )
        return {**jwk, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}


def issue_token(key: SigningKey, claims: dict[str, Any], ttl_seconds: int) -> str:
    now = int(time.time())
    payload = {
        **claims,
        "iss": ISSUER,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(payload, key.private_key(), algorithm=ALGORITHM, headers={"kid": key.kid})


class InvalidToken(Exception):
    pass


class TokenVerifier:
    """Verifies tokens against a JWKS document; unknown key ids trigger a (rate-limited) refresh.

    A token that verified is remembered until it expires (or its key leaves the JWKS): a client
    sends the same token with every request, and checking its signature and claims again each time
    was a tenth of the gateway's CPU.
    """

    MAX_REMEMBERED = 10_000

    def __init__(self) -> None:
        self._keys: dict[str, Any] = {}
        self.last_refresh = 0.0
        self._verified: dict[str, tuple[dict[str, Any], float, str]] = {}  # token -> claims, exp, kid

    def load_jwks(self, document: dict[str, Any]) -> None:
        keys = {}
        for jwk in document.get("keys", []):
            if jwk.get("kid") and jwk.get("kty") == "OKP":
                keys[jwk["kid"]] = jwt.PyJWK.from_dict(jwk, algorithm=ALGORITHM).key
        self._keys = keys
        self._verified.clear()
        self.last_refresh = time.monotonic()

    def remembered(self, token: str) -> dict[str, Any] | None:
        """The claims of a token verified before, while it is unexpired and its key still known."""
        found = self._verified.get(token)
        if found is None:
            return None
        claims, expires_at, kid = found
        if time.time() >= expires_at or kid not in self._keys:
            del self._verified[token]
            return None
        return claims

    def key_id(self, token: str) -> str:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("unsupported token algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("token has no key id")
        return kid

    def knows(self, kid: str) -> bool:
        return kid in self._keys

    def verify(self, token: str) -> dict[str, Any]:
        kid = self.key_id(token)
        key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("unknown signing key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("invalid token") from exc
        if len(self._verified) >= self.MAX_REMEMBERED:
            self._verified.clear()
        self._verified[token] = (claims, float(claims["exp"]), kid)
        return claims
