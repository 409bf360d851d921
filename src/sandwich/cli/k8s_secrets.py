"""`sandwich secrets kubernetes`: the one Secret the Helm chart reads, made here, never by the chart.

What `sandwich up` makes under its secrets folder, made the same way for a cluster: each service's
Ed25519 key pair (platform/service_auth.py), auth's and web's sealing keys (platform/sealing.py), a
database password for each service's role (platform/db_roles.py) and the first admin's password.
The chart mounts each service's own private key, every public key and its sealing key as files, and
passes the passwords as variables (deploy/helm/sandwich/templates/_helpers.tpl).

The manifest is written 0600 (it holds every secret of the platform): apply it with `kubectl apply
-f FILE` (or seal it with your secret manager), then remove the file.
"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sandwich.platform.sealing import KEY_BYTES
from sandwich.platform.secret_files import new_password, write_private
from sandwich.platform.settings import SERVICES

GATEWAY = "gateway"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _key_pair() -> tuple[bytes, bytes]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def secret_data() -> dict[str, bytes]:
    """Every key of the Secret, freshly made: the names templates/_helpers.tpl mounts and reads."""
    data: dict[str, bytes] = {}
    for service in SERVICES:
        data[f"{service}.key"], data[f"{service}.pub"] = _key_pair()
        if service != GATEWAY:  # the gateway keeps no data
            data[f"database-{service}"] = new_password().encode()
    data["signing-keys.seal"] = secrets.token_bytes(KEY_BYTES)
    data["sessions.seal"] = secrets.token_bytes(KEY_BYTES)
    data["admin-password"] = new_password().encode()
    return data


def secret_manifest(name: str, namespace: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/part-of": "sandwich"}}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata,
        "data": {key: _b64(value) for key, value in sorted(secret_data().items())},
    }


def write_manifest(path: Path, name: str, namespace: str | None) -> None:
    """The manifest as JSON (kubectl reads it as it reads YAML), 0600, whole or not at all."""
    write_private(path, json.dumps(secret_manifest(name, namespace), indent=2) + "\n")
