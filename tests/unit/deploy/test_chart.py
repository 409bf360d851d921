"""The Helm chart (deploy/helm/sandwich), rendered offline by Helm's own engine with each values file
under ci/: it lints, every object validates against the Kubernetes schemas (strict) or its operator's
schema, and what it configures is what the code reads and does."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
from cloudcoil.models.istio.networking import v1 as istio_networking
from cloudcoil.models.istio.security import v1 as istio_security
from cloudcoil.models.prometheus_operator import v1 as prometheus
from pydantic import BaseModel

from sandwich.cli.chart_data import chart_data
from sandwich.cli.k8s_secrets import secret_data
from sandwich.platform.settings import SERVICES, service_url_env
from sandwich.platform.tokens import ISSUER
from tests.helm_chart import (
    CHART,
    RELEASE,
    VALUES_FILES,
    container,
    dashed,
    env_of,
    named,
    notes,
    of_kind,
    render,
    rendered,
    values_of,
)
from tests.unit.deploy.operator_schemas import CNPG_CLUSTER, KAFKA_TOPIC

pytestmark = pytest.mark.unit

KUBERNETES_VERSION = "1.33"
MODELS: dict[str, type[BaseModel]] = {
    "Gateway": istio_networking.Gateway,
    "VirtualService": istio_networking.VirtualService,
    "DestinationRule": istio_networking.DestinationRule,
    "RequestAuthentication": istio_security.RequestAuthentication,
    "PeerAuthentication": istio_security.PeerAuthentication,
    "AuthorizationPolicy": istio_security.AuthorizationPolicy,
    "ServiceMonitor": prometheus.ServiceMonitor,
    "PrometheusRule": prometheus.PrometheusRule,
}
SCHEMAS = {"KafkaTopic": KAFKA_TOPIC, "Cluster": CNPG_CLUSTER}
VALUES_IDS = [path.stem for path in VALUES_FILES]
OTEL_VARIABLES = {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"}
"""The OpenTelemetry SDK's own standard variables (platform/tracing.py), read by the SDK, not Settings."""
DATABASE_SERVICES = [service for service in SERVICES if service != "gateway"]


def test_there_are_the_three_combinations_ci_renders() -> None:
    assert VALUES_IDS == ["everything-values", "mesh-operators-values", "minimal-values"]


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=VALUES_IDS)
def test_the_chart_lints_strictly(values_file: Path) -> None:
    report = helm.lint(str(CHART), values_of(values_file), strict=True, kube_version="v1.33.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert (problems, report["errors"]) == ([], [])


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=VALUES_IDS)
def test_every_object_validates_against_its_schema(values_file: Path) -> None:
    objects = rendered(values_file)
    assert len(objects) >= 5 * len(SERVICES)
    for obj in objects:
        kind = obj["kind"]
        if kind in MODELS:
            _matches_model(obj, MODELS[kind])
        elif kind in SCHEMAS:
            jsonschema.validate(obj, SCHEMAS[kind])
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def _matches_model(obj: dict[str, Any], model: type[BaseModel]) -> None:
    """Valid, and nothing dropped on the way: the models ignore unknown fields, so a misspelt one
    shows as a difference between the object and the model's own rendering of it."""
    parsed = model.model_validate(obj)
    again = parsed.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert _without_empty(again) == _without_empty(json.loads(json.dumps(obj))), obj["metadata"]["name"]


def _without_empty(value: Any) -> Any:
    if isinstance(value, dict):
        kept = {k: _without_empty(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in ({}, [], None)}
    if isinstance(value, list):
        return [_without_empty(v) for v in value]
    return value


def test_a_model_check_catches_a_misspelt_field() -> None:
    policy = named(rendered(VALUES_FILES[0]), "AuthorizationPolicy", f"{RELEASE}-orders")
    misspelt = {**policy, "spec": {**policy["spec"], "rulez": policy["spec"]["rules"]}}
    with pytest.raises(AssertionError):
        _matches_model(misspelt, istio_security.AuthorizationPolicy)


def test_one_template_per_service_with_the_same_shape() -> None:
    templates = {path.stem for path in (CHART / "templates").glob("*.yaml")}
    assert {dashed(service) for service in SERVICES} <= templates
    objects = rendered(VALUES_FILES[-1])
    for service in SERVICES:
        name = f"{RELEASE}-{dashed(service)}"
        assert container(named(objects, "Deployment", name))["args"] == ["serve", service]
        for kind in ("ServiceAccount", "Service", "PodDisruptionBudget", "NetworkPolicy"):
            named(objects, kind, name)


def test_the_charts_platform_file_is_what_the_code_says() -> None:
    written = json.loads((CHART / "files" / "platform.json").read_text())
    assert written == chart_data(), (
        "regenerate: python -m sandwich.cli.chart_data > deploy/helm/sandwich/files/platform.json"
    )


def _settings_variables() -> set[str]:
    source = (Path(__file__).resolve().parents[3] / "src/sandwich/platform/settings.py").read_text()
    return set(re.findall(r'_env\(\s*"([A-Z_]+)"', source))


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=VALUES_IDS)
def test_every_variable_the_chart_sets_is_a_setting(values_file: Path) -> None:
    known = _settings_variables() | {service_url_env(service) for service in SERVICES} | OTEL_VARIABLES
    for deployment in of_kind(rendered(values_file), "Deployment") + of_kind(rendered(values_file), "Job"):
        pod = deployment["spec"]["template"]["spec"]
        for entry in pod["containers"][0]["env"]:
            assert entry["name"] in known, (deployment["metadata"]["name"], entry["name"])


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=VALUES_IDS)
def test_every_setting_a_service_needs_is_set(values_file: Path) -> None:
    objects = rendered(values_file)
    values = values_of(values_file)
    calls = chart_data()["calls"]
    for service in SERVICES:
        env = env_of(named(objects, "Deployment", f"{RELEASE}-{dashed(service)}"))
        peers = {call["callee"] for call in calls if call["caller"] == service}
        peers |= set(SERVICES) if service == "gateway" else set()
        peers |= {"gateway"} if service == "web" else set()
        needed = {service_url_env(peer) for peer in peers}
        if service != "gateway":
            needed |= {"DATABASE_URL", "SANDWICH_DATABASE_PASSWORD"}
        if values.get("flow", "hybrid") != "sync":
            needed |= {"KAFKA_BOOTSTRAP_SERVERS"}
        needed |= {"SANDWICH_ADMIN_USERNAME", "SANDWICH_ADMIN_PASSWORD"} if service == "auth" else set()
        needed |= {"SANDWICH_SMTP_HOST", "SANDWICH_SMTP_PORT"} if service == "notifications" else set()
        assert needed - set(env) == set(), service
        assert env["SANDWICH_FLOW"]["value"] == values.get("flow", "hybrid")


def test_every_secret_the_chart_reads_is_one_sandwich_secrets_makes() -> None:
    made = set(secret_data())
    for obj in rendered(VALUES_FILES[0]):
        if obj["kind"] not in ("Deployment", "Job"):
            continue
        pod = obj["spec"]["template"]["spec"]
        for entry in pod["containers"][0]["env"]:
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["name"] == "sandwich-secrets":
                assert ref["key"] in made
        for volume in pod["volumes"]:
            if volume.get("secret", {}).get("secretName") == "sandwich-secrets":
                assert {item["key"] for item in volume["secret"]["items"]} <= made


def test_no_secret_no_chart() -> None:
    values = values_of(VALUES_FILES[-1])
    values["secrets"] = {"name": ""}
    with pytest.raises(helm.HelmError, match="sandwich secrets kubernetes"):
        render(values)


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=VALUES_IDS)
def test_every_pod_runs_unprivileged_with_probes_on_the_health_paths(values_file: Path) -> None:
    for deployment in of_kind(rendered(values_file), "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        one = container(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert one["securityContext"]["readOnlyRootFilesystem"] is True
        assert one["securityContext"]["allowPrivilegeEscalation"] is False
        assert one["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert one["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
        assert one["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
        assert one["resources"]["requests"] and one["resources"]["limits"]["memory"]
        assert pod["automountServiceAccountToken"] is False


def test_the_migrations_run_before_install_and_upgrade_with_the_admin_url() -> None:
    job = of_kind(rendered(VALUES_FILES[-1]), "Job")[0]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    one = job["spec"]["template"]["spec"]["containers"][0]
    assert one["args"] == ["migrate", "--service-roles", "/var/run/sandwich/db-roles"]
    assert one["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "sandwich-postgres-admin", "key": "uri"}
    paths = {item["path"] for item in job["spec"]["template"]["spec"]["volumes"][0]["secret"]["items"]}
    assert paths == {f"sandwich_{service}.pgpass" for service in DATABASE_SERVICES}


def test_strimzi_makes_every_topic_and_its_dead_letter_topic() -> None:
    everything = VALUES_FILES[0]
    prefix = values_of(everything)["broker"]["topicPrefix"]
    topics = {t["spec"]["topicName"] for t in of_kind(rendered(everything), "KafkaTopic")}
    assert topics == {prefix + topic for topic in chart_data()["topics"]}
    assert {"prod.order.events", "prod.order.events.dlq"} <= topics


def _service_of(account: str) -> str:
    return {f"{RELEASE}-{dashed(service)}": service for service in SERVICES}[account]


def _allowed_calls(objects: list[dict[str, Any]]) -> tuple[set[tuple[str, str, str, str]], set[str]]:
    """(caller, callee, method, path) each policy allows from a service, and the services open to
    the ingress gateway."""
    allowed: set[tuple[str, str, str, str]] = set()
    public: set[str] = set()
    for policy in of_kind(objects, "AuthorizationPolicy"):
        if policy["metadata"]["name"].endswith("deny-by-default"):
            assert "rules" not in policy["spec"] and "action" not in policy["spec"]  # allows nothing
            continue
        callee = policy["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"].replace("-", "_")
        for rule in policy["spec"]["rules"]:
            if "from" not in rule:  # open to anyone: health and metrics only
                assert rule["to"] == [
                    {
                        "operation": {
                            "methods": ["GET"],
                            "paths": ["/health/live", "/health/ready", "/metrics"],
                        }
                    }
                ]
                continue
            principals = [p for source in rule["from"] for p in source["source"]["principals"]]
            if "to" not in rule:  # the public entry
                assert any("/ns/istio-system/sa/istio-ingressgateway" in p for p in principals)
                public.add(callee)
                continue
            for principal in principals:
                caller = _service_of(principal.rsplit("/sa/", 1)[1])
                assert principal.startswith("cluster.local/ns/food/sa/")
                for operation in rule["to"]:
                    for method in operation["operation"]["methods"]:
                        for path in operation["operation"]["paths"]:
                            allowed.add((caller, callee, method, path))
    return allowed, public


def test_the_authorization_policies_allow_exactly_the_calls_the_code_makes() -> None:
    objects = rendered(VALUES_FILES[1])
    allowed, public = _allowed_calls(objects)
    expected = {
        (call["caller"], call["callee"], method, call["path"])
        for call in chart_data()["calls"]
        for method in call["methods"]
    }
    assert allowed == expected
    assert public == {"gateway", "web"}
    assert ("orders", "billing", "POST", "/billing/account/operate") in allowed
    assert not any(caller == "web" for caller, *_ in allowed)  # web reaches only the public API


def test_the_mesh_is_strict_and_breaks_circuits_for_every_service() -> None:
    objects = rendered(VALUES_FILES[1])
    (peer,) = of_kind(objects, "PeerAuthentication")
    assert peer["spec"]["mtls"] == {"mode": "STRICT"}
    rules = {rule["metadata"]["name"]: rule["spec"] for rule in of_kind(objects, "DestinationRule")}
    assert set(rules) == {f"{RELEASE}-{dashed(service)}" for service in SERVICES}
    for spec in rules.values():
        assert spec["trafficPolicy"]["tls"] == {"mode": "ISTIO_MUTUAL"}
        assert spec["trafficPolicy"]["outlierDetection"]["consecutive5xxErrors"] >= 1
    (checks,) = of_kind(objects, "RequestAuthentication")
    assert checks["spec"]["jwtRules"][0]["jwksUri"] == "https://sandwich.example.ru/.well-known/jwks.json"
    assert checks["spec"]["jwtRules"][0]["issuer"] == ISSUER


OPERATOR_MODELS = Path(__file__).with_name("operator_models")


def _operator_models_say(objects: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    """The operators' own models (generated from Strimzi's and CloudNativePG's CRDs, on npm) judge
    the objects: types, enums, bounds, required fields. (The field names are held to the ones the
    operators' API references give by operator_schemas.py.)"""
    node = shutil.which("node")
    assert node, "node is needed: ./dev test installs everything the tests use"
    assert (OPERATOR_MODELS / "node_modules").is_dir(), (
        f"npm ci --prefix {OPERATOR_MODELS} (./dev test does it)"
    )
    return subprocess.run(
        [node, str(OPERATOR_MODELS / "validate.mjs")],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_strimzi_and_cloudnativepg_objects_validate_against_the_operators_models() -> None:
    objects = [o for path in VALUES_FILES for o in rendered(path) if o["kind"] in SCHEMAS]
    assert {o["kind"] for o in objects} == {"KafkaTopic", "Cluster"}
    judged = _operator_models_say(objects)
    assert judged.returncode == 0, judged.stdout + judged.stderr
    assert judged.stdout.count("valid ") == len(objects)


def test_the_operators_models_refuse_a_wrong_object() -> None:
    topic = next(o for o in rendered(VALUES_FILES[0]) if o["kind"] == "KafkaTopic")
    wrong = {**topic, "spec": {**topic["spec"], "partitions": "six"}}
    judged = _operator_models_say([wrong])
    assert judged.returncode == 1 and "partitions must be integer" in judged.stdout


def test_the_values_schema_refuses_a_flow_that_does_not_exist_and_an_unknown_service() -> None:
    values = values_of(VALUES_FILES[-1])
    with pytest.raises(helm.HelmError, match="flow"):
        render({**values, "flow": "hybird"})
    with pytest.raises(helm.HelmError, match="ordrs"):
        render({**values, "services": {"ordrs": {"create": True}}})


def test_the_notes_say_where_the_apps_are_and_how_to_sign_in() -> None:
    said = notes(values_of(VALUES_FILES[1]))
    assert "https://sandwich.example.ru/" in said
    assert "get secret sandwich-secrets -o jsonpath='{.data.admin-password}'" in said


def test_tracing_values_become_the_sdks_standard_variables() -> None:
    env = env_of(named(rendered(VALUES_FILES[0]), "Deployment", f"{RELEASE}-orders"))
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel-collector.observability:4318"
    assert env["OTEL_TRACES_SAMPLER"]["value"] == "parentbased_traceidratio"
    assert env["SANDWICH_TRACES_URL"]["value"] == "https://jaeger.example.ru"
    minimal = env_of(named(rendered(VALUES_FILES[-1]), "Deployment", f"{RELEASE}-orders"))
    assert not any(name.startswith("OTEL_") for name in minimal)  # off unless configured
