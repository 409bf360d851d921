"""One member of a group on NATS: what arrives on its push subscription is handled in lanes by key,
acknowledged once settled, and kept alive with progress acks meanwhile (the package's docstring
says how this keeps the bus contract)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING

import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from sandwich.platform.bus.base import BusUnavailable, Membership
from sandwich.platform.bus.group_member import GroupMember
from sandwich.platform.bus.nats.consumer import PushConsumer
from sandwich.platform.bus.nats.wire import KEY_HEADER, message_of, times_delivered

if TYPE_CHECKING:
    from sandwich.platform.bus.nats.bus import NatsBus

log = structlog.get_logger("sandwich.bus.nats")


class NatsGroupMember(GroupMember):
    """One member of a group: a queue subscription on the deliver subject of the group's durable push
    consumer, its messages handled in lanes by key.

    Push, not pull: a pull consumer costs the server a request for every delivery when events come
    one at a time (with five consumer groups at 100 orders/s the NATS server took a fifth of a core,
    more than at twice the rate), and each member a round trip before the next message can come.
    The server bounds what is in flight (`max_ack_pending`); a member handles a key's messages one at
    a time, in the order they came, and different keys side by side (at most
    `max_concurrent_handlers` at once).
    """

    def __init__(self, bus: NatsBus, membership: Membership) -> None:
        super().__init__(bus, membership, handler_timeout_seconds=bus.handler_timeout_seconds, log=log)
        self.bus = bus
        self.consumer = PushConsumer(bus, self.topic, self.group, membership.kinds, self._log)
        self._sub: JetStreamContext.PushSubscription | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        self._lanes: dict[str, deque[Msg]] = {}
        self._lane_tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(bus.max_concurrent_handlers)
        # Handed to this member and not yet acknowledged: kept alive with progress acks meanwhile.
        self._unacked: dict[int, Msg] = {}  # by id(): a Msg is not hashable

    async def start(self) -> None:
        if self.bus.connected:
            # Bind now when we can, so that a consumer exists (and starts from the beginning of the
            # stream) before subscribe() returns; otherwise the loop binds once connected.
            try:
                self._sub = await self.consumer.bind()
            except BusUnavailable as exc:
                self._log.warning("nats_bind_deferred", error=str(exc))
        names = f"{self.consumer.stream}-{self.consumer.durable}"
        self._task = asyncio.create_task(self._run(), name=f"nats-sub-{names}")
        self._keepalive_task = asyncio.create_task(self._keepalive(), name=f"nats-keepalive-{names}")

    async def _drop_sub(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    # -- the loop -------------------------------------------------------------------------------
    async def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            if not self.bus.connected:
                await self._pause(0.25)
                continue
            try:
                if self._sub is None:
                    self._sub = await self.consumer.bind()
                msg = await self._sub.next_msg(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except TimeoutError:
                failures = 0
                if await self.consumer.gone():
                    self._log.warning("nats_consumer_gone", consumer=self.consumer.durable)
                    await self._drop_sub()
                continue
            except Exception as exc:
                failures += 1
                self._warn_now_and_then("nats_receive_failed", exc, failures)
                await self._drop_sub()
                await self._pause(min(5.0, 0.1 * 2**failures))
                continue
            failures = 0
            self._dispatch(msg)

    def _dispatch(self, msg: Msg) -> None:
        """Queue the message on its key's lane; a lane without a task gets one."""
        self._unacked[id(msg)] = msg
        key = (msg.headers or {}).get(KEY_HEADER, "")
        lane = self._lanes.get(key)
        if lane is not None:
            lane.append(msg)
            return
        lane = self._lanes[key] = deque([msg])
        task = asyncio.create_task(self._drain(key, lane), name=f"nats-lane-{self.consumer.durable}")
        self._lane_tasks.add(task)
        task.add_done_callback(self._lane_tasks.discard)

    async def _drain(self, key: str, lane: deque[Msg]) -> None:
        """Handle a key's messages in the order they came; the lane goes once it is empty.

        A message is acknowledged once settled (handled, or parked on the dead-letter topic); one
        abandoned because the member stops is left unacknowledged on purpose."""
        try:
            while lane and not self._stopping.is_set():
                msg = lane[0]
                async with self._slots:
                    if await self._settle(message_of(self.topic, msg, times_delivered(msg))):
                        await self._ack(msg)
                lane.popleft()
                self._unacked.pop(id(msg), None)
        finally:
            if self._lanes.get(key) is lane and (not lane or self._stopping.is_set()):
                del self._lanes[key]
            # Left unacknowledged when stopping: JetStream hands them out again after ack_wait.

    async def _ack(self, msg: Msg) -> None:
        try:
            await msg.ack()
        except Exception as exc:
            # The message comes back after ack_wait; consumers are idempotent.
            self._log.warning("nats_ack_failed", error=repr(exc))

    async def _keepalive(self) -> None:
        """Progress acks for what this member holds while it works through it."""
        interval = max(0.2, self.bus.ack_wait_seconds / 3)
        while not self._stopping.is_set():
            await self._pause(interval)
            if self._stopping.is_set() or not self.bus.connected:
                continue
            for msg in list(self._unacked.values()):
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    async def stop(self) -> None:
        if self._stopping.is_set() and self._task is None:
            return
        self._stopping.set()
        await self._drop_sub()  # nothing more is delivered to this member
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})
        if self._lane_tasks:
            # The messages being handled are finished first (a lane stops after its current one).
            grace = self.bus.shutdown_grace_seconds
            _, pending = await asyncio.wait(set(self._lane_tasks), timeout=grace)
            if pending:
                self._log.warning("nats_handler_cancelled_on_stop", grace=grace)
                for lane_task in pending:
                    lane_task.cancel()
                await asyncio.wait(pending)
        keepalive, self._keepalive_task = self._keepalive_task, None
        if keepalive is not None:
            keepalive.cancel()
            await asyncio.wait({keepalive})
        self.bus._subscriptions.discard(self)
