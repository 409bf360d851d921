"""Pick the bus adapter from the settings: Kafka when it is configured, else NATS JetStream.

Services never name an adapter: they ask for "the bus" and the environment decides, so the same
service runs on the embedded NATS of `sandwich up` and on a Kafka cluster in production.
"""

from __future__ import annotations

from pathlib import Path

from sandwich.platform.bus.base import EventBus
from sandwich.platform.settings import Settings

KAFKA_PUBLISH_TIMEOUT_SECONDS = 5.0
NATS_REQUEST_TIMEOUT_SECONDS = 2.0


class BusNotConfigured(RuntimeError):
    """Neither KAFKA_BOOTSTRAP_SERVERS nor NATS_URL is set, yet the flow needs a broker."""


def broker_password(settings: Settings) -> str | None:
    """The password in SANDWICH_BROKER_PASSWORD_FILE, if one is named."""
    if not settings.broker_password_file:
        return None
    return Path(settings.broker_password_file).read_text().strip()


def make_bus(
    settings: Settings, *, client_name: str, publish_timeout_seconds: float | None = None
) -> EventBus:
    """The bus for this process (not started: call `await bus.start()`).

    `client_name` names the connection on the broker (NATS connection name, Kafka client id), so a
    broker's monitoring shows which service is which. The topic prefix of the settings is applied
    inside the adapter, so callers use the bare topic names of `sandwich.platform.events`.
    `publish_timeout_seconds` bounds how long a publish waits for the broker's acknowledgement (the
    adapter's default when None); a caller that answers a client from it sets it short.
    """
    if settings.kafka_bootstrap_servers:
        from sandwich.platform.bus.kafka import KafkaBus

        return KafkaBus(
            settings.kafka_bootstrap_servers,
            client_name=client_name,
            topic_prefix=settings.topic_prefix,
            partitions=settings.kafka_partitions,
            publish_timeout_seconds=publish_timeout_seconds or KAFKA_PUBLISH_TIMEOUT_SECONDS,
            user=settings.broker_user or None,
            password=broker_password(settings),
        )
    if settings.nats_url:
        from sandwich.platform.bus.nats import NatsBus

        return NatsBus(
            settings.nats_url,
            client_name=client_name,
            topic_prefix=settings.topic_prefix,
            request_timeout_seconds=publish_timeout_seconds or NATS_REQUEST_TIMEOUT_SECONDS,
            user=settings.broker_user or None,
            password=broker_password(settings),
        )
    raise BusNotConfigured(
        "no broker configured: set KAFKA_BOOTSTRAP_SERVERS (Kafka) or NATS_URL (NATS JetStream); "
        "`sandwich up` sets NATS_URL to its embedded nats-server"
    )
