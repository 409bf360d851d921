"""The factory every service uses: lifespan (database, broker, outbox relay, consumers, background
jobs), health and metrics endpoints, the error shape and request observability.

A service declares what it needs (`Service(...)`, `consume(...)`, `every(...)`) in its `app.py`; the
wiring here is the only place that starts or stops anything, so all services behave alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sandwich.platform.bus.base import EventBus, Message, Subscription, dead_letter_topic
from sandwich.platform.db import Database
from sandwich.platform.errors import error_body, install_error_handlers
from sandwich.platform.events import Envelope
from sandwich.platform.http import ServiceClient
from sandwich.platform.inbox import Consumer, EventFilter, idempotent_consumer
from sandwich.platform.observability import (
    DATABASE_UP,
    OUTBOX_BACKLOG,
    RequestObservabilityMiddleware,
    configure_logging,
)
from sandwich.platform.outbox import Committed, OutboxRelay, pending_count
from sandwich.platform.responses import JsonResponse
from sandwich.platform.service_auth import RequireCaller, ServiceKeys
from sandwich.platform.settings import Settings, get_settings
from sandwich.platform.tracing import configure_tracing, inject_into, shutdown_tracing
from sandwich.platform.trust import PUBLIC_FRONTS

OUTBOX_BACKLOG_SECONDS = 5.0
DATABASE_CHECK_SECONDS = 10.0
TRACE_FLUSH_SECONDS = 3.0
SHUTDOWN_HOOK_SECONDS = 2.0
"""How long a stopping service waits for its last spans to be exported."""

log = structlog.get_logger("app")

Hook = Callable[[], Awaitable[None]]
ContextT = TypeVar("ContextT")


@dataclass
class ConsumerSpec:
    topic: str
    consumer: str
    handle: Consumer
    max_attempts: int = 5
    wants: EventFilter | None = None
    kinds: frozenset[str] | None = None


@dataclass
class PeriodicJob:
    name: str
    seconds: float
    run: Hook


class Service:
    """One service process: its settings, database, broker connection, HTTP client and jobs."""

    def __init__(
        self,
        name: str,
        *,
        title: str,
        description: str = "",
        migrations: Path | None = None,
        publishes: bool = False,
        settings: Settings | None = None,
        publish_timeout_seconds: float | None = None,
    ):
        self.name = name
        self.title = title
        self.description = description
        self.settings = settings or get_settings()
        self.migrations = migrations
        self.db: Database | None = Database(self.settings, name) if migrations else None
        # This service's key and every service's public key: it proves itself with the first, checks
        # its callers (and the gateway's user assertions) with the others.
        self.keys = ServiceKeys.load(self.settings.secrets_dir, name)
        self.http = ServiceClient(self.settings, keys=self.keys)
        self.publishes = publishes
        self.publish_timeout_seconds = publish_timeout_seconds
        self.consumers: list[ConsumerSpec] = []
        self.jobs: list[PeriodicJob] = []
        self.startup_hooks: list[Hook] = []
        self.shutdown_hooks: list[Hook] = []
        self.bus: EventBus | None = None
        self.relay: OutboxRelay | None = None
        self._subscriptions: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        # The service's own typed context (`<service>/context.py`): its unit-of-work factory, ports,
        # keys and caches, made once in its app.py and handed to routes by `typed_context`.
        self.context: object | None = None
        # Extra readiness conditions beyond database and broker (e.g. the gateway's signing keys).
        self.readiness_checks: dict[str, Callable[[], Awaitable[bool]]] = {}
        if publishes and self.db is not None:
            # The outbox's backlog as a gauge: the operations console shows it, alerts can use it.
            self.every("outbox-backlog", OUTBOX_BACKLOG_SECONDS, self._measure_outbox_backlog)
        if self.db is not None:
            # Whether the database answers, asked on a clock rather than only when a probe asks, so
            # the alert on a database that is away fires with no traffic and no prober too.
            self.every("database-up", DATABASE_CHECK_SECONDS, self._measure_database)

    # --- declaration -------------------------------------------------------------------------
    def consume(
        self,
        topic: str,
        consumer: str,
        handle: Consumer,
        *,
        max_attempts: int = 5,
        wants: EventFilter | None = None,
        kinds: Collection[str] | None = None,
    ) -> None:
        """Handle `topic`'s events once each (the inbox); `wants` skips the irrelevant ones cheaply.

        `handle(conn, envelope)` works inside the transaction of the inbox claim; a consumer whose
        effect is one statement is given as `OneStatement(effect_of)`, and runs with its claim in one
        round trip (inbox.Effect); one that must ask another service first is given as
        `Prepared(prepare, apply)`, so no transaction waits on that call. `kinds` (order statuses)
        lets a broker that routes by kind send only those events, and the ones without a kind
        (EventBus.subscribe); `wants` still decides.
        """
        spec = ConsumerSpec(topic, consumer, handle, max_attempts, wants, frozenset(kinds) if kinds else None)
        self.consumers.append(spec)

    def every(self, name: str, seconds: float, run: Hook) -> None:
        self.jobs.append(PeriodicJob(name, seconds, run))

    async def _measure_outbox_backlog(self) -> None:
        OUTBOX_BACKLOG.labels(self.name).set(await pending_count(self.database))

    async def _measure_database(self) -> None:
        DATABASE_UP.labels(self.name).set(1 if await self.database.healthy() else 0)

    def on_startup(self, hook: Hook) -> None:
        self.startup_hooks.append(hook)

    def on_shutdown(self, hook: Hook) -> None:
        """Run at a graceful stop, after the consumers and jobs stopped, while the database is still
        open: for work held in memory that another instance should take over at once."""
        self.shutdown_hooks.append(hook)

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run work in the background for the life of the process; cancelled at shutdown."""
        self._tasks.append(asyncio.create_task(work, name=name))

    @property
    def database(self) -> Database:
        assert self.db is not None, f"{self.name} has no database"
        return self.db

    # --- events ------------------------------------------------------------------------------
    def envelope(self, event_type: str, key: str, payload: dict[str, object], version: int = 1) -> Envelope:
        return Envelope(
            type=event_type,
            producer=self.name,
            key=key,
            version=version,
            trace=dict(inject_into({})),  # the context of the transaction that records it
            payload=payload,
        )

    def events_committed(self) -> None:
        """Wake the relay after a commit that recorded events."""
        if self.relay is not None:
            self.relay.notify()

    async def announce_committed(self, key: str, rows: Sequence[Committed] = ()) -> None:
        """After a commit that recorded events of `key`: hand them on as the interaction style says.

        With a broker the relay publishes them in the background and the caller goes on (`rows`, the
        outbox rows the commit wrote, spare the relay looking them up). In `sync` (ADR 001/004) they
        are pushed to their consumers over HTTP now, inside the caller's request, and a consumer that
        is down fails that request with BusUnavailable (the events stay in the outbox and the relay
        delivers them once it is back).
        """
        if self.settings.uses_broker or self.relay is None:
            if self.relay is not None and rows:
                self.relay.hand_over(rows)
            else:
                self.events_committed()
            return
        await self.relay.publish_events_of(key)

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        configure_logging(self.name, self.settings.log_level)
        configure_tracing(self.name)
        if self.db is not None and self.migrations is not None:
            await self.db.prepare(self.migrations)
        if not self.settings.uses_broker and self.publishes and self.db is not None:
            from sandwich.platform.bus.http_push import HttpPushBus
            from sandwich.platform.flows import SUBSCRIBERS

            self.bus = HttpPushBus(self.http, SUBSCRIBERS)
            self.relay = OutboxRelay(self.db, self.bus, self.name, batch_size=20, min_age_seconds=2.0)
            self.relay.start()
        needs_bus = self.settings.uses_broker and (self.publishes or self.consumers)
        if needs_bus:
            from sandwich.platform.bus.factory import make_bus

            self.bus = make_bus(
                self.settings, client_name=self.name, publish_timeout_seconds=self.publish_timeout_seconds
            )
            await self.bus.start()
            topics = sorted({c.topic for c in self.consumers})
            if topics:
                await self._ensure_topics(topics)
            if self.publishes and self.db is not None:
                self.relay = OutboxRelay(self.db, self.bus, self.name)
                self.relay.start()
            for spec in self.consumers:
                self._tasks.append(
                    asyncio.create_task(self._subscribe(spec), name=f"subscribe-{spec.consumer}")
                )
        for hook in self.startup_hooks:
            await hook()
        for job in self.jobs:
            self._tasks.append(asyncio.create_task(self._periodic(job), name=f"job-{job.name}"))
        settle_garbage_collector()

    async def _ensure_topics(self, topics: list[str]) -> None:
        assert self.bus is not None
        try:
            await self.bus.ensure_topics(topics)
        except Exception as exc:  # the broker may be down at start; consumers retry below
            log.warning("ensure_topics_failed", error=repr(exc))

    async def _subscribe(self, spec: ConsumerSpec) -> None:
        """Subscribe, retrying while the broker is away at start-up."""
        assert self.bus is not None and self.db is not None
        handler = idempotent_consumer(
            self.database, self.name, spec.consumer, spec.handle, self.events_committed, spec.wants
        )
        delay = 0.2
        while True:
            try:
                await self.bus.ensure_topics([spec.topic, dead_letter_topic(spec.topic)])
                subscription = await self.bus.subscribe(
                    spec.topic, spec.consumer, handler, max_attempts=spec.max_attempts, kinds=spec.kinds
                )
                self._subscriptions.append(subscription)
                return
            except Exception as exc:
                log.warning("subscribe_failed", topic=spec.topic, error=repr(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

    async def _periodic(self, job: PeriodicJob) -> None:
        while True:
            await asyncio.sleep(job.seconds)
            try:
                await job.run()
            except Exception as exc:
                log.error("job_failed", job=job.name, error=repr(exc))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for subscription in self._subscriptions:
            with contextlib.suppress(Exception):
                await subscription.stop()
        if self.relay is not None:
            await self.relay.stop()
        # Nothing comes in any more: what was taken in memory is handed back (bounded, never raising).
        for hook in self.shutdown_hooks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(hook(), SHUTDOWN_HOOK_SECONDS)
        if self.bus is not None:
            with contextlib.suppress(Exception):
                await self.bus.close()
        await self.http.close()
        if self.db is not None:
            await self.db.close()
        # What the exporter still holds goes out now, bounded: a trace backend that is away must
        # not hold the shutdown up.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.to_thread(shutdown_tracing), TRACE_FLUSH_SECONDS)

    async def ready(self) -> dict[str, bool]:
        checks: dict[str, bool] = {}
        if self.db is not None:
            checks["database"] = await self.db.healthy()
        if self.bus is not None and getattr(self.bus, "is_broker", True):
            checks["broker"] = await self.bus.healthy()
        for name, check in self.readiness_checks.items():
            checks[name] = await check()
        return checks

    # --- the FastAPI app ---------------------------------------------------------------------
    def create_app(self, *routers: APIRouter, openapi_url: str | None = "/openapi.json") -> FastAPI:
        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        app = FastAPI(
            title=self.title,
            description=self.description,
            version="1.0.0",
            lifespan=lifespan,
            openapi_url=openapi_url,
            # FastAPI's native OpenTelemetry is off: the platform's middleware opens each request's
            # span itself (observability.py, tracing.py), once, with the route's template as name.
            telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        )
        app.state.service = self
        install_error_handlers(app)
        for router in (health_router(self), *((events_router(self),) if self.consumers else ()), *routers):
            mount_routes(app, router)
        if self.name not in PUBLIC_FRONTS:  # the public entries; everyone else checks its caller
            app.add_middleware(RequireCaller, keys=self.keys)
        app.add_middleware(RequestObservabilityMiddleware, service=self.name)
        return app


def mount_routes(app: FastAPI, router: APIRouter) -> None:
    """The router's routes, added to the app's own table in order.

    What `include_router` does for routers without a prefix or router-wide dependencies (ours: their
    tags and schema flags are on each route already; the OpenAPI document comes out the same), minus
    the layer FastAPI keeps per included router: measured in-process, that layer cost ~9 us of a
    40 us health check, on every request of every service.
    """
    app.router.routes.extend(router.routes)


def settle_garbage_collector() -> None:
    """Once started: everything allocated so far (modules, the app, its routes and models) lives as
    long as the process, so it is moved out of the collector's sight (gc.freeze): a full collection
    no longer walks the whole app in the middle of a request."""
    gc.collect()
    gc.freeze()


def health_router(service: Service) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "live", "service": service.name}

    @router.get("/health/ready")
    async def ready() -> JsonResponse:
        checks = await service.ready()
        ok = all(checks.values())
        body: dict[str, object] = {
            "status": "ready" if ok else "not_ready",
            "service": service.name,
            "checks": checks,
        }
        if not ok:
            failing = ", ".join(name for name, good in checks.items() if not good)
            body["error"] = {"code": "not_ready", "message": f"{service.name} cannot reach: {failing}"}
        return JsonResponse(body, status_code=200 if ok else 503)

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


async def service_of(request: Request) -> Service:
    """FastAPI dependency: the Service this app belongs to."""
    service: Service = request.app.state.service
    return service


def typed_context(kind: type[ContextT]) -> Callable[[Request], Awaitable[ContextT]]:
    """A FastAPI dependency giving the service's own context (`Service.context`), checked to be a
    `kind`: each service's `context.py` makes its `context_of` with it, so routes get a typed object
    and no one reads an untyped bag of state."""

    async def context_of(request: Request) -> ContextT:
        context = request.app.state.service.context
        if not isinstance(context, kind):
            raise RuntimeError(f"the service's context is {type(context).__name__}, not {kind.__name__}")
        return context

    return context_of


def events_router(service: Service) -> APIRouter:
    """`POST /internal/v1/events/{topic}`: the consumers of this service, reachable over HTTP.

    The `sync` flow delivers events this way (platform/bus/http_push.py); the handler is the same one
    the broker would call, behind the same inbox, so a repeated push changes nothing.
    """
    router = APIRouter(tags=["events"], include_in_schema=False)
    handlers = {
        spec.topic: idempotent_consumer(
            service.database, service.name, spec.consumer, spec.handle, service.events_committed, spec.wants
        )
        for spec in service.consumers
    }

    @router.post("/internal/v1/events/{topic}")
    async def ingest(topic: str, request: Request) -> JsonResponse:
        handler = handlers.get(topic)
        if handler is None:
            return JsonResponse(error_body("unknown_topic", f"{service.name} does not consume {topic}."), 404)
        raw = await request.body()
        try:
            envelope = Envelope.from_bytes(raw)
        except Exception:
            return JsonResponse(error_body("invalid_event", "The body is not an event envelope."), 422)
        try:
            await handler(Message(topic=topic, key=envelope.key, value=raw))
        except Exception as exc:
            return JsonResponse(error_body("event_not_handled", f"{type(exc).__name__}: {exc}"), 503)
        return JsonResponse({"event_id": envelope.event_id, "status": "handled"})

    return router
