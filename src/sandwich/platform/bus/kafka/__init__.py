"""The event bus on Apache Kafka (production), with aiokafka.

The package: `bus.py` (KafkaBus: producer, admin client, names, topics), `publishing.py`,
`reading.py`, `member.py` (one member of a consumer group: polls, commits, rebalances),
`wire.py` (topic names, headers); retries and dead letters are the same for every broker
(`bus/group_member.py`, `bus/base.py`).

Mapping of the bus contract (see `base.py`) onto Kafka:

- A topic is a Kafka topic `<prefix><topic>` with a few partitions; the message key is the Kafka key,
  so the default partitioner puts every message of a key on one partition, where order is kept.
- `publish` waits for the broker's acknowledgement with `acks=all` (every in-sync replica has it).
  The producer's request timeout is short, so a dead broker turns into `BusUnavailable` within
  seconds and the outbox keeps the message.
- A group is a Kafka consumer group (`<prefix><group>`): partitions are shared among its members, and
  every group has its own committed offsets, so it gets every message.
- Offsets are committed manually, only for messages whose handler returned (at-least-once). Before a
  rebalance takes partitions away, the message in flight is finished and its offset committed, so the
  new owner neither skips nor repeats it. A member that dies without committing leaves its messages
  to the next owner, which starts from the last committed offset.
- One subscription handles its messages one at a time; a failing message is retried in place, so
  nothing behind it on its partition overtakes it, then parked on the dead-letter topic.

Tested against Apache Kafka 4.4 (KRaft, the embedded one of `sandwich up --broker kafka`): the bus
contract suite, and the whole end-to-end suite of the broker flows with two members per group. What
we configured for it:

- The session timeout is 6 s, Kafka's minimum (`group.min.session.timeout.ms`): a member that died
  without leaving loses its partitions to the others within 6 s.
- `enable_idempotence` stays False (acks=all alone). With it the producer keeps a batch it could not
  deliver and sends it once the broker is back, after `publish` had reported the send as failed
  (measured: a publish failed after 6 s while the broker was down, and its message was stored later),
  which is the "sent behind the caller's back" the outbox must not see. Without it a retried send
  may duplicate a message, which the at-least-once contract (idempotent consumers) already allows;
  order is still kept: one batch in flight per partition, and the outbox awaits each publish.
- CreateTopics answers TOPIC_ALREADY_EXISTS (36) per topic; `ensure_topics` creates every topic with
  our partition count, and its dead-letter topic, so the broker needs no auto-creation. A failed
  publish makes the adapter check the topic again before the next one.
"""

from sandwich.platform.bus.kafka.bus import KafkaBus
from sandwich.platform.bus.kafka.wire import KIND_HEADER

__all__ = ["KIND_HEADER", "KafkaBus"]
