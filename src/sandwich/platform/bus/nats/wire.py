"""How the bus's names and messages look on JetStream: subjects, stream and consumer names, headers.

Other parts of the platform name these too (the broker's permissions in
platform/embedded/nats_access.py, the tests), so they live here, apart from the code that uses them.
"""

from __future__ import annotations

import re

from nats.aio.msg import Msg

from sandwich.platform.bus.base import Message

KEY_HEADER = "x-bus-key"
"""Header carrying the message key (JetStream messages have subjects and headers, no key)."""

MSG_ID_HEADER = "Nats-Msg-Id"
"""JetStream's de-duplication header: a second message with the same id in the window is dropped."""

PUSH_SUFFIX = "-push"
"""A group's durable push consumer is named after the group with this suffix."""
DELIVER_PREFIX = "_SANDWICH.deliver"
"""Where push consumers deliver: one subject per stream and group (not under any stream's subjects)."""

KIND_SUBJECT = ".kind."
"""Between a topic's subject and a message's kind (not a bare `.`: `<topic>.dlq` is another stream)."""

_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
VALID_SUBJECT = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")


def sanitize(name: str) -> str:
    """A stream or consumer name: JetStream forbids '.', '*', '>', whitespace and path separators."""
    return _INVALID_NAME_CHARS.sub("_", name)


def stream_name(topic_prefix: str, topic: str) -> str:
    """The stream of `topic` under `topic_prefix` (what `NatsBus.stream_name` gives)."""
    return sanitize(f"{topic_prefix}{topic}")


def message_of(topic: str, msg: Msg, delivery_attempt: int = 1) -> Message:
    """A JetStream message as the bus hands it out: the key from its header, NATS' own headers dropped."""
    headers = {k: v for k, v in (msg.headers or {}).items() if not k.startswith("Nats-")}
    key = headers.pop(KEY_HEADER, "")
    return Message(topic=topic, key=key, value=msg.data, headers=headers, delivery_attempt=delivery_attempt)


def times_delivered(msg: Msg) -> int:
    """How many times JetStream has handed this message to the group (1 where it does not say)."""
    try:
        return int(msg.metadata.num_delivered)
    except Exception:
        return 1


def num_pending(msg: Msg) -> int:
    """How many messages the consumer still has for us after this one (0 where it does not say)."""
    try:
        return int(msg.metadata.num_pending or 0)
    except Exception:
        return 0
