"""Who may do what on the embedded NATS: a user per service, allowed only the subjects its topics need
(platform/trust.py: BUS_PUBLISHES, BUS_CONSUMES), and an admin user for `sandwich up`'s own tools
(replay, the benchmark, the tests). No user, no connection.

What a service may do, in NATS subjects (`P` is the topic prefix, `S` a stream's name, `G` a group):

- publish its own topics (`P<topic>`, `P<topic>.kind.*`) and the dead-letter topics of the ones it
  consumes (`P<topic>.dlq`); nothing else reaches a stream from it;
- make and inspect the streams of those topics (`$JS.API.STREAM.{INFO,CREATE,UPDATE}.S`), never
  delete or purge one;
- make, inspect and bind its own groups' consumers (`$JS.API.CONSUMER.*.S.G-push`, and retire the
  pull consumer `G` of before), and acknowledge their messages (`$JS.ACK.S.G-push.>`);
- receive on its groups' delivery subjects and on its own inbox (`_INBOX.<user>.>`, the replies to
  its requests): another service's deliveries and replies never reach it.

Passwords are random, one 0600 file per user under `<secrets>/nats/`; the server's configuration,
which holds them, is 0600 too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sandwich.platform.bus.base import dead_letter_topic
from sandwich.platform.bus.nats import DELIVER_PREFIX, KIND_SUBJECT, PUSH_SUFFIX, stream_name
from sandwich.platform.secret_files import ensure_password_file
from sandwich.platform.trust import BROKER_ADMIN, BUS_CONSUMES, BUS_PUBLISHES, bus_users

ADMIN_USER = BROKER_ADMIN
INBOX_ROOT = "_INBOX"


def inbox_prefix(user: str) -> str:
    """The inbox a user's requests are answered on (nats-py's `inbox_prefix`)."""
    return f"{INBOX_ROOT}.{user}"


def password_file(secrets_dir: Path, user: str) -> Path:
    return secrets_dir / "nats" / f"{user}.password"


def ensure_password(secrets_dir: Path, user: str) -> str:
    """The user's password, made (0600) the first time."""
    return ensure_password_file(password_file(secrets_dir, user))


def permissions(service: str, prefix: str) -> dict[str, Any]:
    """The NATS permissions of `service`'s user (see the module's docstring)."""
    publishes = BUS_PUBLISHES.get(service, frozenset())
    consumes = BUS_CONSUMES.get(service, frozenset())
    topics = set(publishes) | {topic for topic, _ in consumes}
    topics |= {dead_letter_topic(topic) for topic, _ in consumes}
    publish = [f"{prefix}{t}" for t in sorted(publishes)]
    publish += [f"{prefix}{t}{KIND_SUBJECT}*" for t in sorted(publishes)]
    publish += sorted({f"{prefix}{dead_letter_topic(t)}" for t, _ in consumes})
    publish += ["$JS.API.INFO", "$JS.API.STREAM.NAMES"]
    for topic in sorted(topics):
        stream = stream_name(prefix, topic)
        publish += [f"$JS.API.STREAM.{verb}.{stream}" for verb in ("INFO", "CREATE", "UPDATE")]
    subscribe = [f"{inbox_prefix(service)}.>"]
    for topic, group in sorted(consumes):
        stream, pull = stream_name(prefix, topic), stream_name("", group)
        push = f"{pull}{PUSH_SUFFIX}"
        publish += [
            f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{push}",
            f"$JS.API.CONSUMER.CREATE.{stream}.{push}",
            f"$JS.API.CONSUMER.CREATE.{stream}.{push}.>",
            f"$JS.API.CONSUMER.INFO.{stream}.{push}",
            f"$JS.API.CONSUMER.INFO.{stream}.{pull}",
            f"$JS.API.CONSUMER.DELETE.{stream}.{pull}",
            f"$JS.ACK.{stream}.{push}.>",
        ]
        subscribe.append(f"{DELIVER_PREFIX}.{stream}.{push}")
    return {"publish": {"allow": publish}, "subscribe": {"allow": subscribe}}


def authorization(secrets_dir: Path, prefix: str) -> dict[str, Any]:
    """The server's `authorization` block: every service's user and the admin, passwords made as needed."""
    users: list[dict[str, Any]] = [
        {"user": ADMIN_USER, "password": ensure_password(secrets_dir, ADMIN_USER)},
    ]
    for service in bus_users():
        users.append(
            {
                "user": service,
                "password": ensure_password(secrets_dir, service),
                "permissions": permissions(service, prefix),
            }
        )
    return {"users": users}
