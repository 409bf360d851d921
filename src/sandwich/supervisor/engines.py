"""The engines a platform needs, the database and the broker: the ones the environment names
(DATABASE_URL, NATS_URL, KAFKA_BOOTSTRAP_SERVERS), else embedded ones started here, and the
addresses and broker users the services get."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sandwich.platform.embedded import kafka_access, nats_access
from sandwich.platform.embedded.apache_kafka import EmbeddedApacheKafka
from sandwich.platform.embedded.brokers import EmbeddedBrokerError, EmbeddedNats
from sandwich.platform.embedded.postgres import EmbeddedPostgres
from sandwich.platform.settings import Broker, Flow
from sandwich.platform.trust import bus_users
from sandwich.supervisor.credentials import secrets_dir
from sandwich.supervisor.processes import PlatformError, PlatformStartError

log = logging.getLogger("sandwich.supervisor")

ADMIN_BROKER_USER = nats_access.ADMIN_USER


@dataclass(frozen=True)
class Component:
    """One line of the status table that `sandwich up` prints."""

    name: str
    kind: str
    address: str
    pid: int | None
    log: Path | None


class PlatformEngines:
    """The database and broker of one platform: decided once from the environment (a restart of
    the platform must not mistake its own engines for external ones), started and stopped with it."""

    def __init__(self, env: Mapping[str, str], data_dir: Path, flow: Flow, broker: Broker) -> None:
        self._env = env  # the platform's: read again at each start, as the platform may change it
        self.data_dir = data_dir
        self.flow = flow
        self.broker_kind = broker
        self.postgres: EmbeddedPostgres | None = None
        self.broker: EmbeddedNats | EmbeddedApacheKafka | None = None
        # The services that have a user of their own on the embedded broker (none on an external one).
        self.broker_users: set[str] = set()
        self.external_database_url = env.get("DATABASE_URL", "")
        self.external_nats_url = env.get("NATS_URL", "")
        self.external_kafka = env.get("KAFKA_BOOTSTRAP_SERVERS", "")
        self.database_url = self.external_database_url
        self.nats_url = self.external_nats_url if flow is not Flow.SYNC else ""
        self.kafka_bootstrap = self.external_kafka if flow is not Flow.SYNC else ""
        if self.external_kafka:
            self.broker_kind = Broker.KAFKA
        elif self.external_nats_url:
            self.broker_kind = Broker.NATS

    @property
    def secrets_dir(self) -> Path:
        return secrets_dir(self._env, self.data_dir)

    # -- who the services are on the broker -----------------------------------------------------

    def broker_password_file(self, user: str) -> Path:
        access = kafka_access if self.broker_kind is Broker.KAFKA else nats_access
        return access.password_file(self.secrets_dir, user)

    @property
    def broker_admin(self) -> tuple[str, Path] | None:
        """The embedded broker's admin user and its password file (None for an external broker,
        whose clients connect as its URL says)."""
        if not self.broker_users:
            return None
        return ADMIN_BROKER_USER, self.broker_password_file(ADMIN_BROKER_USER)

    @property
    def nats_admin_url(self) -> str | None:
        """The NATS URL with the admin's credentials (the embedded server asks every client who it
        is), for the platform's own tools; the URL as it is for an external server."""
        if not self.nats_url or not self.broker_users:
            return self.nats_url or None
        password = nats_access.ensure_password(self.secrets_dir, ADMIN_BROKER_USER)
        return self.nats_url.replace("nats://", f"nats://{ADMIN_BROKER_USER}:{password}@", 1)

    def components(self) -> list[Component]:
        """The database's and the broker's lines of the status table."""
        rows: list[Component] = []
        if self.postgres is not None:
            pg = self.postgres
            rows.append(Component("postgres", "database", pg.url, pg.pid, pg.log_path))
        elif self.database_url:
            rows.append(Component("postgres", "database (external)", self.database_url, None, None))
        if self.broker is not None:
            address = self.nats_url or self.kafka_bootstrap
            kind = self.broker_kind.value
            rows.append(Component(kind, "broker", address, self.broker.pid, self.broker.log_path))
        elif self.nats_url:
            rows.append(Component("nats", "broker (external)", self.nats_url, None, None))
        elif self.kafka_bootstrap:
            rows.append(Component("kafka", "broker (external)", self.kafka_bootstrap, None, None))
        return rows

    # -- start and stop ---------------------------------------------------------------------------

    def start_database(self) -> None:
        if self.external_database_url:
            log.info("using the PostgreSQL server from DATABASE_URL")
            return
        began = time.monotonic()
        if self.postgres is None:
            self.postgres = EmbeddedPostgres(self.data_dir)
        self.postgres.start()
        self.database_url = self.postgres.url
        log.info("embedded PostgreSQL ready in %.2fs at %s", time.monotonic() - began, self.database_url)

    def start_broker_if_needed(self) -> None:
        if self.flow is Flow.SYNC:
            log.info("sync flow: no broker")
            return
        if self.external_nats_url or self.external_kafka:
            log.info("using the broker from the environment")
            return
        began = time.monotonic()
        prefix = self._env.get("SANDWICH_TOPIC_PREFIX", "")
        if self.broker is None:
            self.broker = self._new_broker(prefix)
        try:
            self.broker.start(self.data_dir)
            if isinstance(self.broker, EmbeddedApacheKafka):
                admin_password = kafka_access.ensure_password(self.secrets_dir, kafka_access.ADMIN_USER)
                granted = kafka_access.grant_in_thread(self.broker.bootstrap_servers, admin_password, prefix)
                log.info("kafka ACLs in place: %d", granted)
        except EmbeddedBrokerError as exc:  # a missing Java or Maven, or a broker that did not come up
            raise PlatformStartError(
                f"the embedded {self.broker_kind.value} broker did not start: {exc}"
            ) from exc
        self.broker_users = set(bus_users())
        if isinstance(self.broker, EmbeddedApacheKafka):
            self.kafka_bootstrap = self.broker.bootstrap_servers
        else:
            self.nats_url = self.broker.url
        address = self.kafka_bootstrap or self.nats_url
        log.info(
            "embedded %s ready in %.2fs at %s", self.broker_kind.value, time.monotonic() - began, address
        )

    def _new_broker(self, prefix: str) -> EmbeddedNats | EmbeddedApacheKafka:
        if self.broker_kind is Broker.KAFKA:
            return EmbeddedApacheKafka(
                users=kafka_access.users(self.secrets_dir), admin_user=kafka_access.ADMIN_USER
            )
        return EmbeddedNats(authorization=nats_access.authorization(self.secrets_dir, prefix))

    def stop(self) -> list[str]:
        """Stop the broker, then the database; what went wrong, for the caller to log."""
        errors: list[str] = []
        if self.broker is not None:
            try:
                self.broker.stop()
            except Exception as exc:
                errors.append(f"broker: {exc!r}")
        if self.postgres is not None:
            try:
                self.postgres.stop()
            except Exception as exc:
                errors.append(f"postgres: {exc!r}")
        return errors

    def embedded_broker(self) -> EmbeddedNats | EmbeddedApacheKafka:
        """The embedded broker, for the fault tests that stop and start it."""
        if self.broker is None:
            raise PlatformError("no embedded broker runs in this platform (sync flow or external broker)")
        return self.broker

    def embedded_postgres(self) -> EmbeddedPostgres:
        """The embedded PostgreSQL, for the fault tests that stop and start it."""
        if self.postgres is None:
            raise PlatformError("no embedded PostgreSQL runs in this platform (DATABASE_URL was given)")
        return self.postgres
