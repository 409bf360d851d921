"""The laptop's trace backend and Prometheus, run as child-process engines as the brokers are
(child_process.py): on 127.0.0.1, on free ports, stopped with the run that started them.

- `EmbeddedJaeger` (`sandwich up --traces`): Jaeger v2's all-in-one, which takes OTLP over HTTP and
  keeps traces in memory, with its UI and query API. Jaeger is one Go program, so it is built here
  from the Go module proxy with the machine's Go, once, into a cache folder (`sandwich up` needs no
  container runtime and no download of a binary from a release page). Zipkin would need Java and a
  90 MB jar for the same job, and takes OTLP only through a collector in front of it.
- `EmbeddedPrometheus` (`sandwich up --observe`): Debian's `prometheus`, scraping every service's
  /metrics with the platform's alerting rules loaded (deploy/helm/sandwich/files/alerts.yaml).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

from sandwich.platform.embedded.child_process import ChildProcessEngine, EmbeddedEngineError
from sandwich.platform.ports import free_port

JAEGER_MODULE = "github.com/jaegertracing/jaeger/cmd/jaeger"
JAEGER_VERSION = "v1.75.0"  # Jaeger v2's all-in-one (the module's v1 tags carry the v2 program)
JAEGER_BUILD_SECONDS = 1800.0


class MissingTool(EmbeddedEngineError):
    """A program the option needs is not on this machine: the message says what to install."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sandwich"


def jaeger_binary(say: Callable[[str], None] | None = None) -> Path:
    """Jaeger's all-in-one, built once with the machine's Go into the cache folder."""
    target = cache_dir() / "jaeger" / JAEGER_VERSION / "jaeger"
    if target.exists():
        return target
    go = shutil.which("go")
    if go is None:
        raise MissingTool(
            "--traces needs Go (1.24 or newer) to build Jaeger once: install it from https://go.dev/dl/ "
            "or your package manager. Or run any OTLP/HTTP trace backend yourself (Jaeger, Tempo, an "
            "OpenTelemetry Collector) and start the platform with OTEL_EXPORTER_OTLP_ENDPOINT set to it."
        )
    if say is not None:
        say(f"building Jaeger {JAEGER_VERSION} with {go} (once; it is kept in {target.parent}) ...")
    # Jaeger's own go.mod has replace directives, which `go install pkg@version` refuses: it is built
    # as a tool of a module of our own instead (`go get -tool`, then `go build`).
    workspace = target.parent / "build"
    workspace.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-trimpath", "GOTOOLCHAIN": "local"}
    steps = [
        [go, "mod", "init", "sandwich.local/jaeger"] if not (workspace / "go.mod").exists() else None,
        [go, "get", "-tool", f"{JAEGER_MODULE}@{JAEGER_VERSION}"],
        [go, "build", "-o", str(target), JAEGER_MODULE],
    ]
    built = None
    for step in (s for s in steps if s is not None):
        built = subprocess.run(
            step, cwd=workspace, env=env, capture_output=True, text=True, timeout=JAEGER_BUILD_SECONDS
        )
        if built.returncode != 0:
            break
    assert built is not None
    if built.returncode != 0 or not target.exists():
        raise MissingTool(f"Jaeger could not be built with {go}:\n{built.stderr[-3000:]}")
    return target


class _Observer(ChildProcessEngine):
    """An engine with a folder of its own under the platform's data directory, where it writes the
    configuration `_config()` makes (JSON, which YAML reads too) and its log, named after it."""

    file_stem = ""

    def __init__(self, data_dir: Path, ready_timeout: float) -> None:
        super().__init__(ready_timeout=ready_timeout)
        self.data_dir = data_dir

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._launch(self.data_dir / f"{self.file_stem}.log")

    def _config(self) -> dict[str, object]:
        raise NotImplementedError

    def _write_config(self, name: str) -> Path:
        config = self.data_dir / name
        config.write_text(json.dumps(self._config(), indent=2))
        return config


class EmbeddedJaeger(_Observer):
    """Jaeger all-in-one: OTLP/HTTP in (`otlp_endpoint`), the UI and its query API at `ui_url`."""

    kind = "Jaeger"
    file_stem = "jaeger"

    def __init__(self, data_dir: Path, binary: Path, ready_timeout: float = 60.0) -> None:
        super().__init__(data_dir, ready_timeout)
        self.binary = binary
        self.otlp_port = free_port()
        self.health_port = free_port()
        self.query_grpc_port = free_port()

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def otlp_endpoint(self) -> str:
        return f"http://{self.host}:{self.otlp_port}"

    def _command(self) -> list[str]:
        return [str(self.binary), "--config", str(self._write_config("jaeger.yaml"))]

    def _config(self) -> dict[str, object]:
        host = self.host
        return {
            "service": {
                "extensions": ["jaeger_storage", "jaeger_query", "healthcheckv2"],
                "pipelines": {
                    "traces": {
                        "receivers": ["otlp"],
                        "processors": ["batch"],
                        "exporters": ["jaeger_storage_exporter"],
                    }
                },
                "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}},
            },
            "extensions": {
                "healthcheckv2": {"use_v2": True, "http": {"endpoint": f"{host}:{self.health_port}"}},
                "jaeger_query": {
                    "storage": {"traces": "memory"},
                    "http": {"endpoint": f"{host}:{self.port}"},
                    "grpc": {"endpoint": f"{host}:{self.query_grpc_port}"},
                },
                "jaeger_storage": {"backends": {"memory": {"memory": {"max_traces": 100000}}}},
            },
            "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"{host}:{self.otlp_port}"}}}},
            "processors": {"batch": {}},
            "exporters": {"jaeger_storage_exporter": {"trace_storage": "memory"}},
        }


PROMETHEUS_INSTALL_HINT = (
    "--observe runs Prometheus: install it (Debian and Ubuntu: apt-get install prometheus; elsewhere "
    "https://prometheus.io/download/) so that `prometheus` is on the PATH"
)


def rules_file() -> Path | None:
    """The platform's alerting rules, when this is a checkout of the repository."""
    found = Path(__file__).resolve().parents[4] / "deploy" / "helm" / "sandwich" / "files" / "alerts.yaml"
    return found if found.exists() else None


class EmbeddedPrometheus(_Observer):
    """Prometheus scraping `targets` (service -> host:port) every 5 s, with the alerting rules."""

    kind = "Prometheus"
    file_stem = "prometheus"

    def __init__(self, data_dir: Path, targets: dict[str, str], ready_timeout: float = 60.0) -> None:
        super().__init__(data_dir, ready_timeout)
        self.targets = targets
        self.rules = rules_file()
        binary = shutil.which("prometheus")
        if binary is None:
            raise MissingTool(PROMETHEUS_INSTALL_HINT)
        self.binary = binary

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _command(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self._write_config('prometheus.yml')}",
            f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
            "--storage.tsdb.retention.time=2d",
            f"--web.listen-address={self.host}:{self.port}",
        ]

    def _config(self) -> dict[str, object]:
        return {
            "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
            "rule_files": [str(self.rules)] if self.rules else [],
            "scrape_configs": [
                {
                    "job_name": "sandwich",
                    "honor_labels": True,  # the services label their own metrics with `service`
                    "static_configs": [
                        {"targets": [address], "labels": {"sandwich_service": name}}
                        for name, address in sorted(self.targets.items())
                    ],
                }
            ],
        }

    def rule_names(self) -> list[str]:
        """The alerting rules Prometheus has loaded (its own API)."""
        with urllib.request.urlopen(f"{self.url}/api/v1/rules", timeout=5) as answer:
            groups = json.load(answer)["data"]["groups"]
        return [rule["name"] for group in groups for rule in group["rules"]]
