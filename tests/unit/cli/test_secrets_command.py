"""`sandwich secrets kubernetes -o FILE`: the chart's one Secret, written 0600, made once."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sandwich.cli.main import build_parser
from sandwich.platform.settings import SERVICES

pytestmark = pytest.mark.unit


def _run(*argv: str) -> int:
    args = build_parser().parse_args(["secrets", *argv])
    code: int = args.handler(args)
    return code


def test_the_secret_holds_every_key_pair_sealing_key_and_password_written_0600(tmp_path: Path) -> None:
    out = tmp_path / "secrets.json"
    assert _run("kubernetes", "--namespace", "food", "-o", str(out)) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    manifest = json.loads(out.read_text())
    assert (manifest["kind"], manifest["metadata"]) == (
        "Secret",
        {
            "name": "sandwich-secrets",
            "namespace": "food",
            "labels": {"app.kubernetes.io/part-of": "sandwich"},
        },
    )
    data = {key: base64.b64decode(value) for key, value in manifest["data"].items()}
    for service in SERVICES:
        private = serialization.load_pem_private_key(data[f"{service}.key"], password=None)
        public = serialization.load_pem_public_key(data[f"{service}.pub"])
        assert isinstance(private, Ed25519PrivateKey) and isinstance(public, Ed25519PublicKey)
        assert private.public_key().public_bytes_raw() == public.public_bytes_raw()  # a pair
    assert len(data["signing-keys.seal"]) == len(data["sessions.seal"]) == 32
    passwords = [data[f"database-{s}"] for s in SERVICES if s != "gateway"] + [data["admin-password"]]
    assert len(set(passwords)) == len(passwords) and all(len(p) >= 32 for p in passwords)


def test_secrets_are_made_once_an_existing_file_is_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "secrets.json"
    out.write_text("kept")
    assert _run("kubernetes", "-o", str(out)) == 2
    assert out.read_text() == "kept"
