"""Rendering the Helm chart offline with Helm's own engine (helm-python-sdk bundles Helm v4's
library): no cluster, no network, no `helm` binary."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy" / "helm" / "sandwich"
VALUES_FILES = sorted((CHART / "ci").glob("*.yaml"))
RELEASE = "demo"
NAMESPACE = "food"


def values_of(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def render(values: dict[str, Any], *, is_install: bool = True) -> list[dict[str, Any]]:
    """Every object the chart makes with these values, hooks included."""
    chart = helm.Chart.load(str(CHART))
    rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=is_install)
    manifests = [text for path, text in rendered.items() if not path.endswith("NOTES.txt")]
    return [doc for text in manifests for doc in yaml.safe_load_all(text) if doc]


def notes(values: dict[str, Any]) -> str:
    """What `helm install` prints afterwards."""
    rendered = helm.Chart.load(str(CHART)).render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))


@functools.cache
def _rendered_file(path: Path) -> tuple[dict[str, Any], ...]:
    return tuple(render(values_of(path)))


def rendered(path: Path) -> list[dict[str, Any]]:
    return list(_rendered_file(path))


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in of_kind(objects, kind) if o["metadata"]["name"] == name)


def dashed(service: str) -> str:
    return service.replace("_", "-")


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container(deployment)["env"]}
