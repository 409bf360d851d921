"""A group's durable push consumer on its topic's stream, `<group>-push` (the package's docstring
says why push and why one per group): its configuration, binding a member to it, carrying over the
pull consumer a group had before, and noticing that the server forgot it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy

from sandwich.platform.bus.base import BusUnavailable
from sandwich.platform.bus.nats.wire import DELIVER_PREFIX, PUSH_SUFFIX, sanitize

if TYPE_CHECKING:
    from sandwich.platform.bus.nats.bus import NatsBus

CONSUMER_CHECK_SECONDS = 5.0
"""How often an idle member asks whether its consumer still exists."""


class PushConsumer:
    """The group's consumer as one member sees it (every member of the group sets up the same one)."""

    def __init__(self, bus: NatsBus, topic: str, group: str, kinds: Collection[str] | None, log: Any) -> None:
        self.bus = bus
        self.topic = topic
        # The subjects the group's consumer takes: the bare topic and those of the kinds it wants.
        self.filter_subjects = (
            sorted({bus.subject(topic), *(bus.kind_subject(topic, kind) for kind in kinds)})
            if kinds is not None
            else bus.stream_subjects(topic)
        )
        self.stream = bus.stream_name(topic)
        # The pull consumer a group had before it was a push one (its position is carried over).
        self.pull_durable = sanitize(group)
        self.durable = f"{self.pull_durable}{PUSH_SUFFIX}"
        self._last_check = time.monotonic()
        self._log = log

    def config(self, deliver_subject: str, start_seq: int | None) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.durable,
            deliver_subject=deliver_subject,
            deliver_group=self.durable,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start_seq else DeliverPolicy.ALL,
            opt_start_seq=start_seq,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.bus.ack_wait_seconds,
            # Unlimited redelivery on the server: retries and dead-lettering are ours (base.py), so a
            # message is never silently dropped by the broker after max_deliver.
            max_deliver=-1,
            max_ack_pending=self.bus.max_ack_pending,
            filter_subjects=self.filter_subjects,
        )

    def deliver_subject(self) -> str:
        """Where the group's consumer delivers: the same for every member (they are one queue group)."""
        return f"{DELIVER_PREFIX}.{self.stream}.{self.durable}"

    async def bind(self) -> JetStreamContext.PushSubscription:
        """Create or update the consumer (and its stream), then subscribe this member to it."""
        js = self.bus._connected_js()
        await self.bus.ensure_topics([self.topic])
        try:
            pull = await self._pull_consumer(js)
            config = await self._create_or_update(js, pull)
            if pull is not None:
                await self._retire_pull_consumer(js)
            return await js.subscribe_bind(
                stream=self.stream, consumer=self.durable, config=config, manual_ack=True
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            if isinstance(exc, nats.js.errors.APIError) and not isinstance(
                exc, nats.js.errors.ServiceUnavailableError | nats.js.errors.NotFoundError
            ):
                raise
            raise BusUnavailable(f"could not bind consumer {self.durable} on {self.stream}: {exc!r}") from exc

    async def _create_or_update(self, js: JetStreamContext, pull: ConsumerInfo | None) -> ConsumerConfig:
        """The consumer's configuration as the server now has it."""
        try:
            existing = await js.consumer_info(self.stream, self.durable)
        except nats.js.errors.NotFoundError:
            config = self.config(self.deliver_subject(), _first_unacked(pull))
        else:
            # Update what may be updated (ack_wait, filters...), keeping where it delivers.
            config = self.config(existing.config.deliver_subject or self.deliver_subject(), None)
            config = replace(
                config,
                deliver_policy=existing.config.deliver_policy,
                opt_start_seq=existing.config.opt_start_seq,
            )
        try:
            # Racing members create the same consumer: the server takes the same config twice.
            await js.add_consumer(self.stream, config=config)
        except nats.js.errors.BadRequestError as exc:
            # An existing consumer whose fixed fields differ: keep using it as it is.
            self._log.warning("nats_consumer_config_kept", consumer=self.durable, error=str(exc))
            config = (await js.consumer_info(self.stream, self.durable)).config
        return config

    async def _pull_consumer(self, js: JetStreamContext) -> ConsumerInfo | None:
        """The group's consumer from before it was a push one, if there still is one."""
        try:
            info = await js.consumer_info(self.stream, self.pull_durable)
        except nats.js.errors.NotFoundError:
            return None
        return None if info.config.deliver_subject else info  # a push consumer is not ours to retire

    async def _retire_pull_consumer(self, js: JetStreamContext) -> None:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_consumer(self.stream, self.pull_durable)
            self._log.info("nats_pull_consumer_retired", consumer=self.pull_durable)

    async def gone(self) -> bool:
        """Every few seconds while idle: does the consumer still exist (a broker restarted without
        its data forgets it, and a push subscription then just stays silent)?"""
        if time.monotonic() - self._last_check < CONSUMER_CHECK_SECONDS:
            return False
        self._last_check = time.monotonic()
        try:
            await self.bus._connected_js().consumer_info(self.stream, self.durable)
        except nats.js.errors.NotFoundError:
            return True
        except (BusUnavailable, nats.errors.Error, OSError, TimeoutError):
            return False
        return False


def _first_unacked(pull: ConsumerInfo | None) -> int | None:
    """Where a push consumer replacing this pull consumer starts: the first stream sequence it had
    not acknowledged for sure (None: from the beginning, there was none)."""
    if pull is None:
        return None
    return int(pull.ack_floor.stream_seq or 0) + 1 if pull.ack_floor else 1
