import base64
import json
import time

import jwt
import pytest

from sandwich.platform.tokens import ISSUER, InvalidToken, SigningKey, TokenVerifier, issue_token

pytestmark = pytest.mark.unit


def verifier_for(*keys: SigningKey) -> TokenVerifier:
    verifier = TokenVerifier()
    verifier.load_jwks({"keys": [key.public_jwk() for key in keys]})
    return verifier


def test_a_token_round_trips() -> None:
    key = SigningKey.generate()
    token = issue_token(key, {"sub": "u1", "username": "alice", "roles": ["customer"]}, 60)
    claims = verifier_for(key).verify(token)
    assert claims["sub"] == "u1" and claims["username"] == "alice"


def test_expired_token_is_refused() -> None:
    key = SigningKey.generate()
    token = issue_token(key, {"sub": "u1"}, -10)
    with pytest.raises(InvalidToken, match="expired"):
        verifier_for(key).verify(token)


def test_token_signed_by_another_key_with_the_same_kid_is_refused() -> None:
    key, forger = SigningKey.generate(), SigningKey.generate()
    forged = issue_token(SigningKey(key.kid, forger.private_pem), {"sub": "u1"}, 60)
    with pytest.raises(InvalidToken):
        verifier_for(key).verify(forged)


def test_alg_none_and_hmac_tokens_are_refused() -> None:
    key = SigningKey.generate()
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": key.kid}).encode()).rstrip(b"=")
    payload = base64.urlsafe_b64encode(
        json.dumps(
            {"sub": "u1", "iss": ISSUER, "exp": int(time.time()) + 60, "iat": int(time.time())}
        ).encode()
    ).rstrip(b"=")
    unsigned = f"{header.decode()}.{payload.decode()}."
    with pytest.raises(InvalidToken):
        verifier_for(key).verify(unsigned)
    # A forger's HS256 token, signed with a 32-byte secret (PyJWT warns about shorter ones).
    hmac = jwt.encode({"sub": "u1"}, "s" * 32, algorithm="HS256", headers={"kid": key.kid})
    with pytest.raises(InvalidToken):
        verifier_for(key).verify(hmac)


def test_garbage_is_refused() -> None:
    with pytest.raises(InvalidToken):
        verifier_for(SigningKey.generate()).verify("not-a-token")


def test_a_verified_token_is_remembered_until_it_expires() -> None:
    key = SigningKey.generate()
    verifier = verifier_for(key)
    token = issue_token(key, {"sub": "u1", "username": "alice"}, 2)
    assert verifier.remembered(token) is None  # never seen: it must be verified first
    claims = verifier.verify(token)
    assert verifier.remembered(token) == claims
    time.sleep(2.1)
    assert verifier.remembered(token) is None


def test_a_remembered_token_is_forgotten_when_its_key_leaves_the_jwks() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    verifier = verifier_for(old, new)
    token = issue_token(old, {"sub": "u1"}, 60)
    verifier.verify(token)
    verifier.load_jwks({"keys": [new.public_jwk()]})
    assert verifier.remembered(token) is None
    with pytest.raises(InvalidToken):
        verifier.verify(token)


def test_a_refused_token_is_not_remembered() -> None:
    key, forger = SigningKey.generate(), SigningKey.generate()
    verifier = verifier_for(key)
    forged = issue_token(SigningKey(key.kid, forger.private_pem), {"sub": "u1"}, 60)
    with pytest.raises(InvalidToken):
        verifier.verify(forged)
    assert verifier.remembered(forged) is None
