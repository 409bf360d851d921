"""The real Apache Kafka broker as a child process: one KRaft node, broker and controller in one JVM.

This runs Apache Kafka itself, on the same base as NATS (`BrokerEngine`: free ports on 127.0.0.1,
dies with its parent, `stop()/start()/restart()` keep the ports and the data), so the bus adapter
and the platform can be checked against the broker production uses.

No tarball to install: Kafka's own jars are resolved by Maven from Maven Central on first use
(kafka_install.py) into a cache shared by every data directory and process (`kafka_cache_dir`). The
machine needs Java 17+ and Maven.

Broker choices (`<data_dir>/kafka/server.properties` is rewritten on every start, as ports change):
- Static quorum (`controller.quorum.voters`) and a cluster id kept in `<data_dir>/kafka/cluster.id`:
  the storage is formatted once, and a later run may use other ports (`--standalone` would write the
  controller's endpoint into the metadata log).
- `log.dirs=<data_dir>/kafka/logs`: topics, committed offsets and messages survive a restart. Kafka
  leaves flushing to the page cache, so even SIGKILL (`kill()`) loses nothing acknowledged.
- Replication factor 1 for every internal topic, `group.initial.rebalance.delay.ms=0` (a group's
  first member gets its partitions at once), 10 partitions instead of 50 for the offsets and
  transaction topics (files a laptop does not need, and a slower first group join).
- `auto.create.topics.enable=false` by default: the bus adapter creates every topic it uses, and its
  dead-letter topic, with its own partition count, as production clusters expect; broker-side
  creation would only hide a missing `ensure_topics` behind a topic with `num.partitions` (6) and no
  dead-letter topic. `auto_create_topics=True` turns broker-side creation on.
- A small JVM (`-Xms256m -Xmx512m -XX:+UseG1GC` by default); log4j2 writes the broker's log at INFO
  to `<data_dir>/apache-kafka.log`, where the JVM's stdout/stderr go too, so a failed start shows it.

Ready means more than an open port: the broker answers a Metadata request listing itself, which it
does once it has registered with its controller and is unfenced.
"""

from __future__ import annotations

import logging
import socket
import struct
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from sandwich.platform.embedded.brokers import HOST, BrokerEngine, EmbeddedBrokerError
from sandwich.platform.embedded.child_process import port_accepts
from sandwich.platform.embedded.kafka_install import (
    MIN_JAVA,
    checked_java,
    ensure_kafka_jars,
    java_binary,
    kafka_cache_dir,
    kafka_version,
    new_cluster_id,
)
from sandwich.platform.ports import free_port
from sandwich.platform.secret_files import write_private

__all__ = [
    "MIN_JAVA",
    "EmbeddedApacheKafka",
    "EmbeddedBrokerError",
    "checked_java",
    "ensure_kafka_jars",
    "java_binary",
    "kafka_cache_dir",
    "kafka_version",
    "metadata_broker_count",
    "new_cluster_id",
]

log = logging.getLogger(__name__)

# One file, appended to. Kafka logs its controlled shutdown from its own shutdown hook, so log4j's
# hook must not close the file first; every config object dumps its settings at INFO: WARN for those.
_LOG4J2 = """\
status = warn
shutdownHook = disable
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""
# Kafka's own JVM defaults (kafka-run-class.sh), and no half-dead JVM lingering after an OOM.
_JVM_FLAGS = ("-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
              "-XX:+ExplicitGCInvokesConcurrent", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true")  # fmt: skip


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        chunks += chunk
    return bytes(chunks)


_CLIENT_ID = b"sandwich-ready"


def _exchange(sock: socket.socket, api_key: int, version: int, correlation: int, body: bytes) -> bytes:
    """One request (header v1: api key, version, correlation id, client id) and its answer's body."""
    header = struct.pack(">hhih", api_key, version, correlation, len(_CLIENT_ID)) + _CLIENT_ID
    sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    answer = _recv_exact(sock, size)
    (answered,) = struct.unpack_from(">i", answer)
    if answered != correlation:
        raise ConnectionError(f"unexpected correlation id {answered}")
    return answer[4:]


def _sasl_plain(sock: socket.socket, user: str, password: str) -> None:
    """SaslHandshake v1 (PLAIN), then SaslAuthenticate v0 with `\0user\0password`."""
    mechanism = b"PLAIN"
    answer = _exchange(sock, 17, 1, 5, struct.pack(">h", len(mechanism)) + mechanism)
    (error,) = struct.unpack_from(">h", answer)
    if error:
        raise ConnectionError(f"the broker refused SASL/PLAIN (error {error})")
    token = b"\0" + user.encode() + b"\0" + password.encode()
    answer = _exchange(sock, 36, 0, 6, struct.pack(">i", len(token)) + token)
    (error,) = struct.unpack_from(">h", answer)
    if error:
        raise ConnectionError(f"the broker refused the credentials of {user} (error {error})")


def metadata_broker_count(
    host: str, port: int, timeout: float = 2.0, *, credentials: tuple[str, str] | None = None
) -> int:
    """Brokers listed in a Metadata answer (v4, the oldest Kafka 4 serves; no topics asked for),
    after a SASL/PLAIN login when `credentials` (user, password) are given.

    Written out by hand (a dozen bytes) so that readiness needs no event loop: `start()` is called
    from synchronous code and from inside running loops alike.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        if credentials is not None:
            _sasl_plain(sock, *credentials)
        # An empty topic array (no topics) and allow_auto_topic_creation = false.
        answer = _exchange(sock, 3, 4, 7, struct.pack(">ib", 0, 0))
    # throttle_time_ms, then the broker array's length.
    _throttle, brokers = struct.unpack_from(">ii", answer)
    return int(brokers)


class EmbeddedApacheKafka(BrokerEngine):
    """A single-node Apache Kafka (KRaft) under `<data_dir>/kafka`, on ports of its own.

    `stop()` sends SIGTERM: Kafka's controlled shutdown (flushes, writes its clean-shutdown marker),
    then SIGKILL after 30 s.
    """

    kind = "apache-kafka"
    stop_timeout = 30.0

    def __init__(
        self,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        host: str = HOST,
        ready_timeout: float = 90.0,
        heap_min: str = "256m",
        heap_max: str = "512m",
        jvm_options: Sequence[str] = (),
        partitions: int = 6,
        auto_create_topics: bool = False,
        config: Mapping[str, str] | None = None,
        cache_dir: Path | None = None,
        users: Mapping[str, str] | None = None,
        admin_user: str | None = None,
    ) -> None:
        """`config` adds or overrides broker properties; `cache_dir` overrides `kafka_cache_dir()`.

        `users` (name -> password) and `admin_user` (one of them): every client logs in (SASL/PLAIN)
        and may do only what ACLs grant it (StandardAuthorizer), the admin anything; without them
        the broker lets anyone do anything (the bus contract tests' own broker)."""
        super().__init__(port=port, host=host, ready_timeout=ready_timeout)
        self._controller_port = controller_port
        self.heap_min, self.heap_max = heap_min, heap_max
        self.jvm_options = list(jvm_options)
        self.partitions = partitions
        self.auto_create_topics = auto_create_topics
        self.extra_config = dict(config or {})
        self.cache_dir = cache_dir
        self.users = dict(users or {})
        self.admin_user = admin_user
        if self.users and admin_user not in self.users:
            raise ValueError("admin_user must be one of users")
        self._java: str | None = None
        self._not_ready = "no answer yet"
        self._lib: Path | None = None

    # -- addresses and files ----------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def controller_port(self) -> int:
        if self._controller_port is None:
            raise EmbeddedBrokerError("the embedded apache-kafka has not been started yet")
        return self._controller_port

    @property
    def kafka_dir(self) -> Path:
        return self.data_dir / "kafka"

    @property
    def log_dir(self) -> Path:
        """Kafka's `log.dirs`: the topics' partitions and the KRaft metadata log."""
        return self.kafka_dir / "logs"

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self, data_dir: Path | None = None) -> None:
        """Start (again, on the same ports and data when `data_dir` is omitted); blocks until ready.

        The first start on a machine downloads the jars (outside `ready_timeout`), the first on a
        data directory formats its storage.
        """
        data_dir = self._take_data_dir(data_dir)
        if self.running:
            return
        self._java = self._java or checked_java()
        self._lib = ensure_kafka_jars(self.cache_dir)
        if self._port is None:
            self._port = free_port(self.host)
        if self._controller_port is None:
            self._controller_port = free_port(self.host)
            while self._controller_port == self._port:
                self._controller_port = free_port(self.host)
        elif port_accepts(self.host, self._controller_port):
            raise EmbeddedBrokerError(f"port {self._controller_port} is already taken: cannot start Kafka")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._format_once()
        self._launch(data_dir / "apache-kafka.log")

    # -- what the base runs -----------------------------------------------------------------------
    def _command(self) -> list[str]:
        assert self._java is not None and self._lib is not None
        config = self.kafka_dir / "log4j2.properties"
        return [self._java, f"-Xms{self.heap_min}", f"-Xmx{self.heap_max}", *_JVM_FLAGS,
                f"-Dlog4j2.configurationFile={config}", *self.jvm_options, "-cp", f"{self._lib}/*",
                "kafka.Kafka", str(self.kafka_dir / "server.properties")]  # fmt: skip

    def _answers(self) -> bool:
        """The port accepts (the base's check), then a Metadata request lists this broker."""
        if not port_accepts(self.host, self.port):
            return False
        try:
            if metadata_broker_count(self.host, self.port, credentials=self.admin_credentials) > 0:
                log.info("apache kafka answers metadata on %s", self.bootstrap_servers)
                return True
            self._not_ready = "the broker lists no broker yet"
        except (OSError, struct.error) as exc:
            self._not_ready = repr(exc)
        return False

    def _start_failure(self, code: int, output: str) -> Exception:
        return EmbeddedBrokerError(f"Apache Kafka exited with code {code} on start:\n{output}")

    def _not_ready_message(self) -> str:
        return (
            f"Apache Kafka on port {self.port} did not answer a Metadata request within "
            f"{self.ready_timeout}s ({self._not_ready})"
        )

    @property
    def admin_credentials(self) -> tuple[str, str] | None:
        if not self.users or self.admin_user is None:
            return None
        return self.admin_user, self.users[self.admin_user]

    def _sasl_properties(self) -> dict[str, str]:
        """Both listeners ask for SASL/PLAIN; the broker talks to itself (and to its controller) as
        the admin, the one super user; anyone else may do what the ACLs say."""
        assert self.admin_credentials is not None
        admin, password = self.admin_credentials

        def jaas(users: Mapping[str, str]) -> str:
            known = " ".join(f'user_{name}="{secret}"' for name, secret in sorted(users.items()))
            return (
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="{admin}" password="{password}" {known};'
            )

        return {
            "listeners": f"BROKER://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"BROKER://{self.host}:{self.port}",
            "inter.broker.listener.name": "BROKER",
            "listener.security.protocol.map": "BROKER:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": "PLAIN",
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.broker.plain.sasl.jaas.config": jaas(self.users),
            "listener.name.controller.plain.sasl.jaas.config": jaas({admin: password}),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{admin}",
            "allow.everyone.if.no.acl.found": "false",
        }

    # -- files ------------------------------------------------------------------------------------
    def _properties(self) -> dict[str, str]:
        broker = f"PLAINTEXT://{self.host}:{self.port}"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": f"{broker},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": broker,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "num.partitions": str(self.partitions),
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": str(self.auto_create_topics).lower(),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # A laptop's two cores: Kafka's defaults (3 network, 8 I/O threads) only add memory here.
            "num.network.threads": "2",
            "num.io.threads": "4",
        }
        if self.users:
            props.update(self._sasl_properties())
        props.update(self.extra_config)
        return props

    def _write_config(self) -> None:
        lines = [f"{key}={value}" for key, value in self._properties().items()]
        # Owner-only: with users, it holds their passwords.
        write_private(
            self.kafka_dir / "server.properties",
            "# Written by sandwich.platform.embedded.apache_kafka on every start.\n"
            + "\n".join(lines)
            + "\n",
        )
        log_file = self.data_dir / "apache-kafka.log"
        (self.kafka_dir / "log4j2.properties").write_text(_LOG4J2.format(log_file=log_file))

    def _format_once(self) -> None:
        """Format `log.dirs` with the data directory's cluster id, unless it already holds a cluster."""
        if (self.log_dir / "meta.properties").exists():
            return
        id_file = self.kafka_dir / "cluster.id"
        if not id_file.exists():
            id_file.write_text(new_cluster_id() + "\n")
        cluster_id = id_file.read_text().strip()
        assert self._java is not None and self._lib is not None
        command = [self._java, "-Xmx256m", "-cp", f"{self._lib}/*", "kafka.tools.StorageTool", "format",
                   "--ignore-formatted", "-t", cluster_id, "-c", str(self.kafka_dir / "server.properties")]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise EmbeddedBrokerError(
                f"formatting Kafka's storage in {self.log_dir} failed (exit {result.returncode}):\n"
                f"{(result.stdout + result.stderr)[-3000:]}"
            )
        log.info("formatted Kafka storage in %s (cluster %s)", self.log_dir, cluster_id)
