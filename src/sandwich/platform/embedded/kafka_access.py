"""Who may do what on the embedded Apache Kafka: every client logs in (SASL/PLAIN) as a service's user
or the admin, and ACLs (StandardAuthorizer) allow each service only what its topics need, from the
same table as the NATS permissions (platform/trust.py: BUS_PUBLISHES, BUS_CONSUMES):

- its own topics: WRITE, DESCRIBE and CREATE (the producer makes a topic and its dead-letter topic
  when it first publishes); the dead-letter topic of its own topics: CREATE and DESCRIBE;
- the topics it consumes: READ, DESCRIBE, CREATE; their dead-letter topics: WRITE, DESCRIBE, CREATE;
- its consumer groups: READ, DESCRIBE.

Nobody but the admin may delete or alter a topic, read a topic it does not consume or write one it
does not own. Passwords are random, one 0600 file per user under `<secrets>/kafka/`; the broker's
server.properties, which holds them, is 0600 too.

aiokafka's admin client has no call for ACLs; its protocol module has the CreateAcls request, sent
here on the admin client's connection.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest

from sandwich.platform.bus.base import dead_letter_topic
from sandwich.platform.secret_files import ensure_password_file
from sandwich.platform.trust import BROKER_ADMIN, BUS_CONSUMES, BUS_PUBLISHES, bus_users

ADMIN_USER = BROKER_ADMIN

# Kafka's enums (org.apache.kafka.common.resource.ResourceType, acl.AclOperation, ...)
TOPIC, GROUP = 2, 3
READ, WRITE, CREATE, DESCRIBE = 3, 4, 5, 8
ALLOW, LITERAL = 3, 3

Binding = tuple[str, int, str, int]
"""(principal's user, resource type, resource name, operation): one ALLOW ACL on a literal name."""


def password_file(secrets_dir: Path, user: str) -> Path:
    return secrets_dir / "kafka" / f"{user}.password"


def ensure_password(secrets_dir: Path, user: str) -> str:
    return ensure_password_file(password_file(secrets_dir, user))


def users(secrets_dir: Path) -> dict[str, str]:
    """Every user of the broker and its password (made the first time): the admin and each service."""
    return {name: ensure_password(secrets_dir, name) for name in (ADMIN_USER, *bus_users())}


def bindings(service: str, prefix: str) -> list[Binding]:
    """The ACLs of `service`'s user (see the module's docstring)."""
    granted: list[Binding] = []

    def allow(resource_type: int, name: str, *operations: int) -> None:
        granted.extend((service, resource_type, f"{prefix}{name}", op) for op in operations)

    for topic in sorted(BUS_PUBLISHES.get(service, frozenset())):
        allow(TOPIC, topic, WRITE, DESCRIBE, CREATE)
        allow(TOPIC, dead_letter_topic(topic), DESCRIBE, CREATE)
    for topic, group in sorted(BUS_CONSUMES.get(service, frozenset())):
        allow(TOPIC, topic, READ, DESCRIBE, CREATE)
        allow(TOPIC, dead_letter_topic(topic), WRITE, DESCRIBE, CREATE)
        allow(GROUP, group, READ, DESCRIBE)
    return sorted(set(granted))


async def grant(bootstrap_servers: str, admin_password: str, prefix: str) -> int:
    """Create every service's ACLs (creating one that exists changes nothing); how many were sent."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id="sandwich-acls",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_plain_username=ADMIN_USER,
        sasl_plain_password=admin_password,
    )
    await admin.start()
    try:
        every = [binding for service in bus_users() for binding in bindings(service, prefix)]
        for user, resource_type, name, operation in every:
            request = CreateAclsRequest(resource_type, name, LITERAL, f"User:{user}", "*", operation, ALLOW)
            response = await admin._send_request(request)
            for error_code, error_message in response.creation_responses:
                if error_code:
                    raise RuntimeError(
                        f"Kafka refused the ACL {operation} on {name} for {user}: {error_message}"
                    )
        return len(every)
    finally:
        await admin.close()


def grant_in_thread(bootstrap_servers: str, admin_password: str, prefix: str, timeout: float = 60.0) -> int:
    """`grant` from synchronous code, whether or not this thread runs an event loop."""
    outcome: list[int | BaseException] = []

    def run() -> None:
        try:
            outcome.append(
                asyncio.run(asyncio.wait_for(grant(bootstrap_servers, admin_password, prefix), timeout))
            )
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, name="sandwich-kafka-acls")
    worker.start()
    worker.join()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result
