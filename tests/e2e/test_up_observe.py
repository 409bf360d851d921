"""`sandwich up --observe`, as a person runs it: the platform, and beside it a real Prometheus
(Debian's package) scraping every service, with the platform's alerting rules loaded; its address
is printed, and it stops with the platform."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandwich.platform.ports import free_port
from sandwich.platform.settings import SERVICES

pytestmark = pytest.mark.e2e

SANDWICH = str(Path(sys.executable).with_name("sandwich"))
RULES = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "sandwich" / "files" / "alerts.yaml"
START_SECONDS = 120.0


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)


def _wait_for_line(log: Path, pattern: str, process: subprocess.Popen[bytes]) -> re.Match[str]:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text(errors="replace"))
        if found:
            return found
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        time.sleep(0.5)
    raise AssertionError(
        f"no {pattern!r} within {START_SECONDS}s:\n{log.read_text(errors='replace')[-3000:]}"
    )


def test_up_observe_runs_prometheus_over_every_service_with_the_alerting_rules(tmp_path: Path) -> None:
    if shutil.which("prometheus") is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is missing: ./dev test installs Debian's prometheus package")
        pytest.skip("prometheus is missing here: apt-get install prometheus (./dev test does it)")
    log = tmp_path / "up.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SANDWICH_", "OTEL_"))},
        "DATABASE_URL": "",
        "NATS_URL": "",
        "KAFKA_BOOTSTRAP_SERVERS": "",
        "COLUMNS": "250",  # the printed addresses on one line each
    }
    command = [SANDWICH, "up", "--observe", "--data-dir", str(tmp_path / "data")]
    command += ["--port", str(free_port()), "--apps-port", str(free_port())]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        found = _wait_for_line(log, r"metrics: Prometheus at (http://127\.0\.0\.1:\d+)", process)
        prometheus = found.group(1)
        _wait_for_line(log, r"press Ctrl-C to stop", process)

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            targets = _get(f"{prometheus}/api/v1/targets")["data"]["activeTargets"]
            health = {t["labels"]["sandwich_service"]: t["health"] for t in targets}
            if set(health) == set(SERVICES) and set(health.values()) == {"up"}:
                break
            time.sleep(1)
        assert health == dict.fromkeys(SERVICES, "up")

        loaded = {r["name"] for g in _get(f"{prometheus}/api/v1/rules")["data"]["groups"] for r in g["rules"]}
        written = {
            rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
        }
        assert loaded == written
        answering = 0.0
        deadline = time.monotonic() + 60
        while answering < len(SERVICES) - 1 and time.monotonic() < deadline:  # checked every 10 s
            up = _get(f"{prometheus}/api/v1/query?query=sum(database_up)")["data"]["result"]
            answering = float(up[0]["value"][1]) if up else 0.0
            time.sleep(1)
        assert answering == len(SERVICES) - 1  # every service with a database: each one answers
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{prometheus}/-/ready", timeout=2)  # stopped with the platform
