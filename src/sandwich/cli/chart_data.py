"""What the Helm chart must know of the code, written out: `deploy/helm/sandwich/files/platform.json`.

The chart cannot run Python, so the file holds what the code says:
- `calls`: every call between services a flow makes (`platform/trust.INTERNAL_CALLS`) and every
  public route the gateway forwards (`services/gateway/domain.ROUTES`), from which the chart renders
  Istio's AuthorizationPolicies, the NetworkPolicies and each Deployment's `SANDWICH_URL_<PEER>`;
- `topics`: every topic the platform uses and its dead-letter topic, for Strimzi's KafkaTopics.

tests/unit/deploy checks the file against the code, so the mesh can neither allow a call the code
does not make nor refuse one it does. Regenerate:
`python -m sandwich.cli.chart_data > deploy/helm/sandwich/files/platform.json`.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from sandwich.platform.bus import dead_letter_topic
from sandwich.platform.trust import BUS_CONSUMES, BUS_PUBLISHES, GATEWAY, INTERNAL_CALLS
from sandwich.services.gateway.domain import ROUTES


def istio_path(template: str) -> str:
    """A path template as Istio's AuthorizationPolicy matches it: `{name}` is one segment, `{*}`."""
    return re.sub(r"\{[a-z_]+\}", "{*}", template)


def service_calls() -> list[dict[str, Any]]:
    """Who calls whom with which methods on which path, one entry per (caller, callee, path)."""
    merged: dict[tuple[str, str, str], set[str]] = {}
    for call in INTERNAL_CALLS:
        merged.setdefault((call.caller, call.callee, call.path), set()).add(call.method)
    for route in ROUTES:
        merged.setdefault((GATEWAY, route.service, route.template), set()).update(route.methods)
        # the gateway assembles the public OpenAPI document from each routed service's own
        merged.setdefault((GATEWAY, route.service, "/openapi.json"), set()).add("GET")
    return [
        {"caller": caller, "callee": callee, "methods": sorted(methods), "path": istio_path(path)}
        for (caller, callee, path), methods in sorted(merged.items())
    ]


def topics() -> list[str]:
    """Every topic published or consumed, and the dead-letter topic of each consumed one."""
    used = {topic for published in BUS_PUBLISHES.values() for topic in published}
    consumed = {topic for pairs in BUS_CONSUMES.values() for topic, _ in pairs}
    return sorted(used | consumed | {dead_letter_topic(topic) for topic in consumed})


def chart_data() -> dict[str, Any]:
    return {"calls": service_calls(), "topics": topics()}


def main() -> int:
    sys.stdout.write(json.dumps(chart_data(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
