"""How the bus's names and messages look on Kafka: topic names, the kind header, records as messages."""

from __future__ import annotations

import re

from aiokafka.structs import ConsumerRecord

from sandwich.platform.bus.base import Message

VALID_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")

KIND_HEADER = "x-bus-kind"
"""Header carrying a message's kind (Outgoing.kind)."""


def message_of(topic: str, record: ConsumerRecord[bytes, bytes]) -> Message:
    """A Kafka record as the bus hands it out: key and headers decoded."""
    return Message(
        topic=topic,
        key=(record.key or b"").decode("utf-8", "replace"),
        value=record.value or b"",
        headers={k: (v or b"").decode("utf-8", "replace") for k, v in (record.headers or ())},
    )
