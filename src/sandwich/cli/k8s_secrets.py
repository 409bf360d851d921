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
from pathlib import Path
from typing import Any

from sandwich.platform.sealing import new_sealing_key
from sandwich.platform.secret_files import new_password, write_private
from sandwich.platform.service_auth import new_key_pair
from sandwich.platform.settings import SERVICES

GATEWAY = "gateway"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def secret_data() -> dict[str, bytes]:
    """Every key of the Secret, freshly made: the names templates/_helpers.tpl mounts and reads."""
    data: dict[str, bytes] = {}
    for service in SERVICES:
        data[f"{service}.key"], data[f"{service}.pub"] = new_key_pair()
        if service != GATEWAY:  # the gateway keeps no data
            data[f"database-{service}"] = new_password().encode()
    data["signing-keys.seal"] = new_sealing_key()
    data["sessions.seal"] = new_sealing_key()
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
