"""The event bus on NATS JetStream: the embedded default (file storage, events survive restarts).

The package: `bus.py` (NatsBus: connection, names, streams), `publishing.py`, `reading.py`,
`consumer.py` (a group's durable consumer), `member.py` (one member of a group: lanes, acks),
`wire.py` (subjects, names, headers); retries and dead letters are the same for every broker
(`bus/group_member.py`, `bus/base.py`).

Mapping of the bus contract (see `base.py`) onto JetStream:

- A topic is a stream of its own (`<prefix><topic>` with dots made underscores) bound to the subject
  `<prefix><topic>` and, for messages published with a kind, `<prefix><topic>.kind.<kind>`. One stream
  per topic keeps retention, inspection and deletion per topic, as a Kafka topic would, and one
  sequence for all its subjects, so per-key order holds across kinds; its dead-letter topic
  (`<topic>.dlq`, outside the `.kind.` subjects) is a stream too. File storage.
- A group that asks for some kinds only gets a consumer filtered on the server to those kinds'
  subjects and the bare one: the messages it would skip are never sent to it (with five consumer
  groups on `order.events`, about half the deliveries of an order were events nobody there wanted).
- `publish` is a JetStream publish that waits for the PubAck, i.e. for the stream to have stored the
  message. The message key travels in a header (JetStream has no key of its own).
- A group is a durable push consumer of the topic's stream, `<group>-push`, delivering to a subject
  of its own with the group as its queue group: its members share the work, each message going to
  one member; another group is another consumer with its own position, so it gets every message.
  (Groups were pull consumers named `<group>` before; the push consumer starts where such a one had
  got to, and retires it.) Push rather than pull: a pull request per delivery cost the server more
  than the messages when events come one at a time.
- Acknowledgement is explicit and sent only after the handler returned. A member that dies leaves its
  messages unacknowledged, and JetStream hands them out again after `ack_wait`. While a handler is
  busy (or retrying) the member keeps what it holds alive with progress acks (+WPI), so a slow
  handler is not mistaken for a dead one and its messages are not given to another member meanwhile.
  The server stops delivering to the group at `max_ack_pending` unacknowledged messages.
- A member handles its messages in lanes, one per key: each lane in the order the messages came,
  the lanes side by side; a failing message is retried in place, so one member sees each key's
  messages in publish order while a slow key does not hold up the others. JetStream does not
  partition a consumer by key: with several members in a group, two messages of one key may be
  handled by two members at the same time. The platform runs one consumer process per service and
  group, and every consumer checks the aggregate version, so this is harmless here; use the Kafka
  adapter where strict per-key order across many members matters.
- The NATS client reconnects by itself, forever, and restores its subscriptions. Publishing fails
  fast (`BusUnavailable`) while it is disconnected instead of being buffered, so the outbox keeps the
  message and retries; JetStream's durable consumers resume where they were, and a member whose
  consumer vanished (a broker restarted without its data) binds a new one.
"""

from sandwich.platform.bus.nats.bus import NatsBus
from sandwich.platform.bus.nats.publishing import PipelinedPublisher
from sandwich.platform.bus.nats.wire import (
    DELIVER_PREFIX,
    KEY_HEADER,
    KIND_SUBJECT,
    MSG_ID_HEADER,
    PUSH_SUFFIX,
    stream_name,
)

__all__ = [
    "DELIVER_PREFIX",
    "KEY_HEADER",
    "KIND_SUBJECT",
    "MSG_ID_HEADER",
    "PUSH_SUFFIX",
    "NatsBus",
    "PipelinedPublisher",
    "stream_name",
]
