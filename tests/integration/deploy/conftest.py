"""The geo edge's test bench: real HAProxy with deploy/haproxy/haproxy.cfg, in front of two regions
that are each a real gateway process (`python -m sandwich.cli.serve gateway`, what `sandwich up`
and a container run) with a stand-in auth of its own.

The stand-in auth is the one thing that is not the platform: a gateway is ready (the edge's health
check, /health/ready) once it has auth's signing keys, and auth needs a database. The stand-in
serves an empty key set and records what a gateway forwards to it, which shows the client address
the gateway took from the edge's X-Forwarded-For.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from pathlib import Path
from typing import cast

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families

from sandwich.cli.serve import SUPERVISOR_PID_ENV
from sandwich.platform.ports import free_port
from tests.readiness import wait_until_ready

REPO = Path(__file__).resolve().parents[3]
HAPROXY_CONFIG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
HOST = "127.0.0.1"
CLIENT_OF_MOSCOW = "127.0.0.2"
CLIENT_OF_NOVOSIBIRSK = "127.0.0.3"
CLIENT_ELSEWHERE = "127.0.0.4"
"""Source addresses of the test's clients: the whole of 127.0.0.0/8 is the loopback on Linux."""
TEST_MAP = f"{CLIENT_OF_MOSCOW}/32 moscow\n{CLIENT_OF_NOVOSIBIRSK}/32 novosibirsk\n"
DEFAULT_REGION = "moscow"
LIVE_PATH = "/health/live"
"""What the clients ask through the edge: the gateway answers it without any peer. The edge's health
check asks /health/ready, so a gateway's count of /health/live answers is the clients' requests alone."""
GATEWAY_START_SECONDS = 60.0
EDGE_START_SECONDS = 20.0
STOP_SECONDS = 15.0
REQUEST_SECONDS = 10.0
"""Bounds for a loaded 2-core machine: generous, but a hang still fails the test instead of stalling."""


def haproxy_binary() -> str:
    """HAProxy's path. Missing: a skip on a developer's machine, a failure under CI, where the project's
    set-up (`./dev test`) installs Debian's haproxy, so a missing one is a broken set-up."""
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").is_file() else None)
    if found is not None:
        return found
    reason = "no haproxy binary: `./dev test` installs it (as root: apt-get install haproxy)"
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(reason)
    print(f"skipping the geo edge's tests: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def haproxy() -> str:
    """HAProxy's path (or the skip or failure of haproxy_binary), before anything else is started."""
    return haproxy_binary()


def log_tail(path: Path, max_chars: int = 3000) -> str:
    """The end of a process's log, for the message of a failed assertion."""
    if not path.exists():
        return "(no log)"
    return path.read_text(encoding="utf-8", errors="replace")[-max_chars:]


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as an orchestrator stops it; SIGKILL only if it does not go within STOP_SECONDS."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_SECONDS)


# --- the regions --------------------------------------------------------------------------------


class StandInAuth(ThreadingHTTPServer):
    """A region's auth as far as its gateway needs one here: an empty JWKS (enough for the gateway to
    be ready) and registrations that record the client address the gateway forwards."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__((HOST, 0), _StandInAuthHandler)
        self.forwarded_for: list[str] = []
        self._thread = threading.Thread(target=self.serve_forever, name="stand-in-auth", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=STOP_SECONDS)


class _StandInAuthHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/.well-known/jwks.json":
            self._answer(200, {"keys": []})
        else:
            self._answer(404, {"error": {"code": "not_found", "message": "Not found."}})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        cast(StandInAuth, self.server).forwarded_for.append(self.headers.get("X-Forwarded-For", ""))
        self._answer(201, {"registered": True})

    def _answer(self, status: int, body: object) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test's output is the assertions'."""


@dataclass
class Region:
    """One region: a real gateway process and its stand-in auth."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    auth: StandInAuth
    log_path: Path

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    async def live_answers(self) -> int:
        """How many /health/live requests this gateway answered, from its own /metrics (asked
        directly, not through the edge): which region served the clients, told by the region itself."""
        async with httpx.AsyncClient(timeout=REQUEST_SECONDS) as client:
            text = (await client.get(f"{self.url}/metrics")).raise_for_status().text
        return int(
            sum(
                sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "http_requests_total" and sample.labels.get("route") == LIVE_PATH
            )
        )

    def stop(self) -> None:
        stop_process(self.process)


@dataclass
class Regions:
    moscow: Region
    novosibirsk: Region


def _start_gateway(port: int, auth: StandInAuth, secrets: Path, workdir: Path) -> subprocess.Popen[bytes]:
    """A gateway as `sandwich up` runs one, in the sync flow (no broker), trusting the edge on
    127.0.0.1 for X-Forwarded-For."""
    env = {name: value for name, value in os.environ.items() if name != SUPERVISOR_PID_ENV}
    env.update(
        SANDWICH_FLOW="sync",
        SANDWICH_SECRETS_DIR=str(secrets),
        SANDWICH_DATA_DIR=str(workdir),
        SANDWICH_URL_AUTH=auth.url,
        SANDWICH_TRUSTED_PROXIES=HOST,
        SANDWICH_LOG_LEVEL="warning",
    )
    with (workdir / "gateway.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "sandwich.cli.serve", "gateway", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _wait_ready(region: Region) -> None:
    wait_until_ready(
        f"{region.url}/health/ready",
        region.process,
        seconds=GATEWAY_START_SECONDS,
        what=f"{region.name}'s gateway",
        log=lambda: log_tail(region.log_path),
    )


@contextmanager
def running_regions(secrets: Path, workdir: Path) -> Iterator[Regions]:
    """Both regions, started side by side and ready; stopped when the block ends."""
    started: list[Region] = []
    try:
        for name in ("moscow", "novosibirsk"):
            folder = workdir / name
            folder.mkdir(parents=True, exist_ok=True)
            auth = StandInAuth()
            port = free_port()
            process = _start_gateway(port, auth, secrets, folder)
            started.append(Region(name, port, process, auth, folder / "gateway.log"))
        for region in started:
            _wait_ready(region)
        yield Regions(moscow=started[0], novosibirsk=started[1])
    finally:
        for region in started:
            region.stop()
            region.auth.stop()


@pytest.fixture(scope="module")
def shared_regions(
    haproxy: str, service_keys: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Regions]:
    """Regions for the tests that leave them running (they compare counts before and after). After
    `haproxy`: without HAProxy the test is skipped (or fails) before any gateway is started."""
    with running_regions(service_keys, tmp_path_factory.mktemp("regions")) as regions:
        yield regions


@pytest.fixture
def own_regions(haproxy: str, service_keys: Path, tmp_path: Path) -> Iterator[Regions]:
    """Regions of one test's own: for a test that stops one (after `haproxy`, as shared_regions)."""
    with running_regions(service_keys, tmp_path / "regions") as regions:
        yield regions


# --- the edge -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EdgeFiles:
    certificate: Path
    region_map: Path


def write_self_signed_certificate(path: Path) -> None:
    """The edge's certificate and key in one PEM (what `bind ... ssl crt` reads), for 127.0.0.1 and
    localhost; the clients trust exactly this certificate, so TLS is verified, not waved through."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandwich edge test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(IPv4Address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM) + key_pem)
    path.chmod(0o600)


@pytest.fixture(scope="module")
def edge_files(tmp_path_factory: pytest.TempPathFactory) -> EdgeFiles:
    folder = tmp_path_factory.mktemp("edge")
    certificate = folder / "edge.pem"
    write_self_signed_certificate(certificate)
    region_map = folder / "regions.map"
    region_map.write_text(TEST_MAP, encoding="utf-8")
    return EdgeFiles(certificate, region_map)


def edge_environment(
    files: EdgeFiles, servers: tuple[str, str], https_port: int, plain_port: int, rate_limit: int
) -> dict[str, str]:
    """Everything haproxy.cfg reads from the environment (`servers`: moscow's and novosibirsk's
    address:port); none inherited from the caller's."""
    moscow, novosibirsk = servers
    env = {name: value for name, value in os.environ.items() if not name.startswith("SANDWICH_EDGE_")}
    env.update(
        SANDWICH_EDGE_CERT=str(files.certificate),
        SANDWICH_EDGE_REGION_MAP=str(files.region_map),
        SANDWICH_EDGE_DEFAULT_REGION=DEFAULT_REGION,
        SANDWICH_EDGE_MOSCOW_SERVER=moscow,
        SANDWICH_EDGE_NOVOSIBIRSK_SERVER=novosibirsk,
        SANDWICH_EDGE_HTTPS_ADDR=HOST,
        SANDWICH_EDGE_HTTPS_PORT=str(https_port),
        SANDWICH_EDGE_HTTP_ADDR=HOST,
        SANDWICH_EDGE_HTTP_PORT=str(plain_port),
        SANDWICH_EDGE_RATE_LIMIT=str(rate_limit),
    )
    return env


@dataclass
class Edge:
    """A running HAProxy with the project's configuration."""

    process: subprocess.Popen[bytes]
    https_port: int
    plain_port: int
    certificate: Path
    log_path: Path

    @property
    def plain_url(self) -> str:
        return f"http://{HOST}:{self.plain_port}"

    def client(self, source: str) -> httpx.AsyncClient:
        """An HTTPS client of the edge whose connections come from `source` (the edge routes and
        limits by it), trusting the edge's certificate only. For `async with`."""
        tls = ssl.create_default_context(cafile=str(self.certificate))
        transport = httpx.AsyncHTTPTransport(local_address=source, verify=tls)
        return httpx.AsyncClient(
            transport=transport, base_url=f"https://{HOST}:{self.https_port}", timeout=REQUEST_SECONDS
        )

    def log(self) -> str:
        return log_tail(self.log_path)


def _wait_edge_ready(edge: Edge) -> None:
    """Until the edge's plain listener says it is ready (HAProxy bound every listener by then)."""
    wait_until_ready(
        f"{edge.plain_url}/health/ready",
        edge.process,
        seconds=EDGE_START_SECONDS,
        what="haproxy",
        log=edge.log,
        interval=0.05,
    )


StartEdge = Callable[[Regions, int], Edge]


@pytest.fixture
def start_edge(haproxy: str, edge_files: EdgeFiles, tmp_path: Path) -> Iterator[StartEdge]:
    """Starts HAProxy with haproxy.cfg in front of the given regions and with the given rate limit
    (requests per client in 10 s); stops it at the end of the test."""
    edges: list[Edge] = []

    def start(regions: Regions, rate_limit: int) -> Edge:
        https_port, plain_port = free_port(), free_port()
        servers = (regions.moscow.address, regions.novosibirsk.address)
        env = edge_environment(edge_files, servers, https_port, plain_port, rate_limit)
        log_path = tmp_path / f"haproxy-{len(edges)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [haproxy, "-db", "-f", str(HAPROXY_CONFIG)], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        edge = Edge(process, https_port, plain_port, edge_files.certificate, log_path)
        edges.append(edge)
        _wait_edge_ready(edge)
        return edge

    yield start
    for edge in edges:
        stop_process(edge.process)
