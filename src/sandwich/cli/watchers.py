"""What `sandwich up --traces` and `--observe` run beside the platform: Jaeger, to which every
service exports its spans, and Prometheus, scraping every service with the alerting rules loaded
(platform/embedded/observers.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from sandwich.cli.walkthrough import TRACES_FILE
from sandwich.platform.embedded.observers import (
    EmbeddedJaeger,
    EmbeddedPrometheus,
    MissingTool,
    jaeger_binary,
)
from sandwich.platform.settings import SERVICES

if TYPE_CHECKING:
    from sandwich.supervisor import Platform

__all__ = ["MissingTool", "Watchers"]


class Watchers:
    def __init__(self, data_dir: Path, console: Console) -> None:
        self.data_dir = data_dir
        self.console = console
        self.jaeger: EmbeddedJaeger | None = None
        self.prometheus: EmbeddedPrometheus | None = None

    def start_traces(self) -> dict[str, str]:
        """Jaeger running; the variables that make every service export every trace to it."""
        binary = jaeger_binary(say=self.console.print)
        self.jaeger = EmbeddedJaeger(self.data_dir / "jaeger", binary)
        with self.console.status("starting Jaeger ..."):
            self.jaeger.start()
        (self.data_dir / TRACES_FILE).write_text(self.jaeger.ui_url + "\n")  # for `sandwich demo`
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.jaeger.otlp_endpoint,
            "OTEL_TRACES_SAMPLER": "parentbased_always_on",
            "SANDWICH_TRACES_URL": self.jaeger.ui_url,
        }

    def start_prometheus(self, platform: Platform) -> None:
        targets = {name: platform.service_url(name).removeprefix("http://") for name in SERVICES}
        self.prometheus = EmbeddedPrometheus(self.data_dir / "prometheus", targets)
        with self.console.status("starting Prometheus ..."):
            self.prometheus.start()

    def print_addresses(self) -> None:
        if self.jaeger is not None:
            self.console.print(
                f"traces: Jaeger at [link={self.jaeger.ui_url}]{self.jaeger.ui_url}[/link] "
                f"(every request traced; find one by its trace id: {self.jaeger.ui_url}/trace/<id>)"
            )
        if self.prometheus is not None:
            rules = self.prometheus.rules or "none (not a checkout of the repository)"
            self.console.print(
                f"metrics: Prometheus at [link={self.prometheus.url}]{self.prometheus.url}[/link] "
                f"scraping {len(self.prometheus.targets)} services, alerting rules from {rules} "
                f"({self.prometheus.url}/alerts)"
            )

    def stop(self) -> None:
        for watcher in (self.prometheus, self.jaeger):
            if watcher is not None:
                watcher.stop()
        (self.data_dir / TRACES_FILE).unlink(missing_ok=True)
