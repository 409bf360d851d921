"""The rendered Helm chart is the platform's configuration, not merely valid YAML.

Every service is started with the container command and environment the chart renders (the image's
ENTRYPOINT `sandwich` plus the Deployment's args), the migration Job first, and the Secret the chart
reads made by `sandwich secrets kubernetes`'s own code. Only addresses change: PostgreSQL's, Kafka's,
the mail server's and the peers' (each Service's name becomes a local port), and each mounted path
becomes a local folder. The test waits on each rendered readiness probe, then places a paid order
through the gateway, and sees it on the read side (which gets it through Kafka)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from sandwich.cli.k8s_secrets import secret_data
from sandwich.platform.ports import free_port
from sandwich.platform.settings import SERVICES
from tests.e2e.client import Api, eventually
from tests.e2e.world import World
from tests.helm_chart import RELEASE, VALUES_FILES, container, dashed, of_kind, render, values_of

pytestmark = pytest.mark.e2e

SANDWICH = str(Path(sys.executable).with_name("sandwich"))
ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 90.0


def _entrypoint() -> list[str]:
    """The image's ENTRYPOINT, read from the Dockerfile: what the Deployment's args follow."""
    found = re.search(r"^ENTRYPOINT\s+\[(.*)\]\s*$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert found is not None
    words = [w.strip().strip('"') for w in found.group(1).split(",")]
    assert words == ["sandwich"]
    return [SANDWICH]


@dataclass
class Pod:
    """One rendered pod spec made runnable here: its env with the addresses swapped, its mounts as
    folders."""

    name: str
    spec: dict[str, Any]
    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def container(self) -> dict[str, Any]:
        containers: list[dict[str, Any]] = self.spec["containers"]
        return containers[0]

    def mount(self, secrets: dict[str, bytes]) -> dict[str, Path]:
        """Each volume as a folder: a Secret's items written where the pod would see them."""
        volumes = {volume["name"]: volume for volume in self.spec["volumes"]}
        mounted: dict[str, Path] = {}
        for mount in self.container["volumeMounts"]:
            folder = self.root / mount["name"]
            folder.mkdir(parents=True, exist_ok=True)
            secret = volumes[mount["name"]].get("secret")
            for item in secret["items"] if secret else []:
                path = folder / item["path"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(secrets[item["key"]])
                path.chmod(0o400)
            mounted[mount["mountPath"]] = folder
        return mounted


@dataclass
class Cluster:
    """Where the chart's addresses point here."""

    postgres_url: str
    kafka: str
    smtp_port: int
    ports: dict[str, int]
    secrets: dict[str, bytes]
    values: dict[str, Any]

    @staticmethod
    def local_args(pod: Pod, mounted: dict[str, Path]) -> list[str]:
        """The container's args, a mounted path in them made the folder standing in for it."""
        return [_remapped(arg, mounted) for arg in pod.container["args"]]

    def local_env(self, pod: Pod, mounted: dict[str, Path]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not _configures_the_platform(k)}
        for entry in pod.container["env"]:
            env[entry["name"]] = self._value(entry)
        for name, value in list(env.items()):
            env[name] = self._addressed(name, value, pod, mounted)
        return env

    def _value(self, entry: dict[str, Any]) -> str:
        if "value" in entry:
            return str(entry["value"])
        ref = entry["valueFrom"]["secretKeyRef"]
        if ref["name"] == self.values["postgres"]["adminSecret"]["name"]:
            return self.postgres_url  # the superuser's URL the operator keeps in that Secret
        return self.secrets[ref["key"]].decode()

    def _addressed(self, name: str, value: str, pod: Pod, mounted: dict[str, Path]) -> str:
        server = make_url(self.postgres_url)
        if name == "DATABASE_URL" and pod.name != "migrate":
            rendered = make_url(value)
            assert rendered.host == self.values["postgres"]["host"]
            return rendered.set(host=server.host, port=server.port).render_as_string(hide_password=False)
        if name == "KAFKA_BOOTSTRAP_SERVERS":
            assert value == self.values["broker"]["kafka"]["bootstrapServers"]
            return self.kafka
        if name == "SANDWICH_SMTP_HOST":
            return "127.0.0.1"
        if name == "SANDWICH_SMTP_PORT":
            return str(self.smtp_port)
        if name == "SANDWICH_HOST":
            return "127.0.0.1"
        if name == "SANDWICH_PORT":
            assert value == str(pod.container["ports"][0]["containerPort"])
            return str(self.ports[pod.name])
        if name.startswith("SANDWICH_URL_"):
            peer = name.removeprefix("SANDWICH_URL_").lower()
            assert value == f"http://{RELEASE}-{dashed(peer)}:8080"
            return f"http://127.0.0.1:{self.ports[peer]}"
        return _remapped(value, mounted)


def _remapped(value: str, mounted: dict[str, Path]) -> str:
    for mount_path, folder in mounted.items():
        if value == mount_path or value.startswith(mount_path + "/"):
            return str(folder) + value[len(mount_path) :]
    return value


def _configures_the_platform(name: str) -> bool:
    return name.startswith(("SANDWICH_", "DATABASE_URL", "NATS_URL", "KAFKA_"))


def _rendered_values(prefix: str) -> dict[str, Any]:
    values = values_of(next(p for p in VALUES_FILES if p.stem == "minimal-values"))
    values["postgres"] |= {"databasePrefix": prefix, "sslmode": "disable"}  # no TLS on the local server
    values["broker"]["topicPrefix"] = f"{prefix}."
    values["replicas"] = 1
    values["flow"] = "hybrid"
    return values


@dataclass
class Running:
    """The platform as the chart configures it, and a way to restart one of its pods."""

    api: Api
    values: dict[str, Any]
    secrets: dict[str, bytes]
    commands: dict[str, tuple[list[str], dict[str, str], Path, str]]  # command, env, log, probe
    processes: dict[str, subprocess.Popen[bytes]]

    async def restart(self, service: str) -> None:
        """Stop the service's process and start it again as before, as a pod's restart would."""
        _stop(self.processes[service])
        command, env, log, probe = self.commands[service]
        self.processes[service] = _start(command, env, log)
        async with httpx.AsyncClient(timeout=5) as client:
            await eventually(lambda: _ready(client, probe), timeout=START_SECONDS, interval=0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _start(command: list[str], env: dict[str, str] | None, log: Path) -> subprocess.Popen[bytes]:
    """A process as its container would run it (a pod is one process here)."""
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log.open("ab"))


def _migrate(command: list[str], env: dict[str, str]) -> None:
    """The migration Job, to its end, before any service starts (its hook runs before install)."""
    migrated = subprocess.run(command, env=env, capture_output=True, timeout=300)
    assert migrated.returncode == 0, migrated.stderr.decode()[-3000:]


async def _ready(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
async def chart_platform(
    postgres_url: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Running]:
    tmp_path = tmp_path_factory.mktemp("chart")
    prefix = f"chart{uuid.uuid4().hex[:8]}"
    values = _rendered_values(prefix)
    objects = render(values)
    secrets = secret_data()
    cluster = Cluster(
        postgres_url,
        kafka_bootstrap,
        free_port(),
        {service: free_port() for service in SERVICES},
        secrets,
        values,
    )
    command = _entrypoint()
    processes: dict[str, subprocess.Popen[bytes]] = {}
    commands: dict[str, tuple[list[str], dict[str, str], Path, str]] = {}
    logs = tmp_path / "logs"
    logs.mkdir()
    try:
        mailsink = ["serve", "mailsink", "--port", str(cluster.smtp_port), "--dir", str(tmp_path / "mail")]
        processes["mailsink"] = _start([SANDWICH, *mailsink], None, logs / "mailsink.log")
        (job,) = of_kind(objects, "Job")
        migrate = Pod("migrate", job["spec"]["template"]["spec"], tmp_path / "migrate")
        mounted = migrate.mount(secrets)
        _migrate([*command, *cluster.local_args(migrate, mounted)], cluster.local_env(migrate, mounted))
        probes: dict[str, str] = {}
        for deployment in of_kind(objects, "Deployment"):
            service = container(deployment)["args"][1]
            pod = Pod(service, deployment["spec"]["template"]["spec"], tmp_path / service)
            mounted = pod.mount(secrets)
            probe = pod.container["readinessProbe"]["httpGet"]
            assert probe["port"] == pod.container["ports"][0]["name"]
            probes[service] = f"http://127.0.0.1:{cluster.ports[service]}{probe['path']}"
            service_command = [*command, *cluster.local_args(pod, mounted)]
            commands[service] = (
                service_command,
                cluster.local_env(pod, mounted),
                logs / f"{service}.log",
                probes[service],
            )
            processes[service] = _start(*commands[service][:3])
        assert set(probes) == set(SERVICES)
        async with httpx.AsyncClient(timeout=5) as client:
            deadline = time.monotonic() + START_SECONDS
            waiting = dict(probes)
            while waiting and time.monotonic() < deadline:
                for service, url in list(waiting.items()):
                    if await _ready(client, url):
                        del waiting[service]
                await asyncio.sleep(0.3)
            if waiting:
                tails = {s: (logs / f"{s}.log").read_text()[-1500:] for s in waiting}
                pytest.fail(f"not ready within {START_SECONDS:.0f}s: {sorted(waiting)}\n{tails}")
        gateway = f"http://127.0.0.1:{cluster.ports['gateway']}"
        async with httpx.AsyncClient(base_url=gateway, timeout=20) as http:
            yield Running(Api(http, flow=values["flow"]), values, secrets, commands, processes)
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            _stop(process)
        shutil.rmtree(tmp_path / "mail", ignore_errors=True)


def _key_id(token: str) -> str:
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    return str(header["kid"])


async def test_the_rendered_chart_runs_the_platform_and_takes_a_paid_order(chart_platform: Running) -> None:
    api, values, secrets = chart_platform.api, chart_platform.values, chart_platform.secrets
    admin_name = values.get("admin", {}).get("username", "admin")
    await api.wait_for_login(admin_name, secrets["admin-password"].decode())
    admin = api.as_user(await api.login(admin_name, secrets["admin-password"].decode()), admin_name)
    world = await World.create(admin)
    await world.food_point(1.0)
    customer = await api.new_customer(deposit=100_000)
    order = await world.order(customer)
    assert order["status"] == "paid", order
    assert await customer.balance() == 100_000 - world.item["price"]

    async def on_the_read_side() -> bool:  # order_info learns of it through Kafka
        answer = await customer.get("/api/v1/orders")
        return any(o["order_id"] == order["order_id"] for o in answer.json()["items"])

    await eventually(on_the_read_side, timeout=30)


async def test_auth_keeps_its_signing_key_across_a_restart(chart_platform: Running) -> None:
    """The signing key lives sealed in auth's database, the sealing key in the chart's Secret: a
    restarted (or another) auth pod signs with the same key, so no token in flight is orphaned."""
    api, secrets = chart_platform.api, chart_platform.secrets
    admin_name = chart_platform.values.get("admin", {}).get("username", "admin")
    password = secrets["admin-password"].decode()
    await api.wait_for_login(admin_name, password)
    before = await api.login(admin_name, password)
    await chart_platform.restart("auth")
    after = await api.login(admin_name, password)
    assert _key_id(after) == _key_id(before)
    assert (await api.as_user(before, admin_name).get("/api/v1/user/me")).status_code == 200
