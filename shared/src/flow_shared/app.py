"""`create_service_app`: one call that gives a Flow service every shared default.

Logging, correlation ids, problem+json errors, security headers, body limit,
trusted hosts, CORS, metrics, health, JWT verification, service-key auth for
`/internal`, the database, Redis, the outbox relay and event consumers, the
service's periodic jobs, and a graceful shutdown that stops them in order. A
service's `main.py` is a few lines.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog
from fastapi import APIRouter, Depends, FastAPI
from redis.asyncio import Redis
from sqlalchemy import Table
from starlette.middleware.cors import CORSMiddleware

from flow_shared.auth import (
    JWKSCache,
    JWKSFetcher,
    TokenVerifier,
    check_internal_routes,
    http_jwks_fetcher,
    require_service_key,
)
from flow_shared.clock import Clock, utcnow
from flow_shared.config import BaseServiceSettings
from flow_shared.correlation import CorrelationIdMiddleware
from flow_shared.db import Database, create_engine
from flow_shared.errors import install_error_handlers, install_problem_docs
from flow_shared.events.consumer import EventConsumer, EventHandlers
from flow_shared.health import HealthRegistry
from flow_shared.health import router as health_router
from flow_shared.json_codec import ORJSONResponse
from flow_shared.lifecycle import PeriodicTask
from flow_shared.logging import configure_logging
from flow_shared.metrics import MetricsMiddleware, metrics_endpoint
from flow_shared.networks import MONITORING_PATHS, MonitoringNetworkMiddleware
from flow_shared.security import (
    BodySizeLimitMiddleware,
    SecurityHeadersMiddleware,
    TrustedHostMiddleware,
)

Hook = Callable[[FastAPI], Awaitable[None]]
# Builds one of the service's periodic jobs once the app is up (it may use app.state).
PeriodicFactory = Callable[[FastAPI], PeriodicTask]
log = structlog.get_logger("flow.app")


@dataclass(frozen=True)
class EventsConfig:
    """What a service publishes (its outbox) and consumes (its inbox and handlers).

    `handlers`: the service's one registry of what it consumes, built once by its
    `event_handlers()`; wired here and nowhere else (a consumer, checked against
    FLEET_SUBSCRIPTIONS)."""

    outbox: Table | None = None
    inbox: Table | None = None
    handlers: EventHandlers = field(default_factory=EventHandlers)


def create_redis(settings: BaseServiceSettings) -> Redis:
    return Redis.from_url(
        settings.redis_url.get_secret_value(),
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=2,
        health_check_interval=30,
    )


def create_service_app(
    settings: BaseServiceSettings,
    *,
    title: str,
    routers: Sequence[APIRouter] = (),
    internal_routers: Sequence[APIRouter] = (),
    events: EventsConfig | None = None,
    jwks_fetcher: JWKSFetcher | None = None,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    periodic: Sequence[PeriodicFactory] = (),
    clock: Clock = utcnow,
    version: str = "1.0.0",
) -> FastAPI:
    """`clock`: what `flow_shared.clock.Now` reads in the app's routes (a test's own clock
    moves time for time-based rules).

    `periodic`: the service's periodic jobs, each built and started in turn after the
    `on_startup` hooks (so it may use what they built) and kept in
    `app.state.periodic_tasks` by name; on shutdown they stop first, last started first,
    before the `on_shutdown` hooks close what they use."""
    configure_logging(settings.service_name, settings.log_level)
    events = events or EventsConfig()
    if events.inbox is not None and events.handlers:
        from flow_shared.events.topology import fleet_topology

        # Fail at build time, not at the first lost event: the handlers must be exactly
        # what the topology binds to this service's queue.
        subscription = fleet_topology(settings.events_exchange).subscription(settings.service_name)
        subscription.check_handlers(events.handlers)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await _start(app, settings, events, jwks_fetcher)
        started: list[PeriodicTask] = []
        try:
            for hook in on_startup:
                await hook(app)
            for build_task in periodic:
                task = build_task(app)
                # Tasks are found (and stopped) by name: a second one of a name would hide
                # the first, which would then run on past shutdown.
                if task.name in app.state.periodic_tasks:
                    raise ValueError(f"two periodic tasks are named {task.name!r}")
                app.state.periodic_tasks[task.name] = task
                await task.start()
                started.append(task)
            log.info("service_started")
            yield
        finally:
            # Uvicorn has stopped accepting and drained in-flight requests by now.
            for task in reversed(started):
                await task.stop()
            for hook in on_shutdown:
                await hook(app)
            await _stop(app)
            log.info("service_stopped")

    app = FastAPI(
        title=title,
        version=version,
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
        # Only the gateway serves docs; services expose their OpenAPI for it to merge.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.events = events
    app.state.health = HealthRegistry()
    periodic_tasks: dict[str, PeriodicTask] = {}
    app.state.periodic_tasks = periodic_tasks
    install_error_handlers(app)
    install_problem_docs(app)

    app.include_router(health_router)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    for router in routers:
        app.include_router(router)
    check_internal_routes(internal_routers)
    app.state.internal_routers = list(internal_routers)
    for router in internal_routers:
        app.include_router(
            router, include_in_schema=False, dependencies=[Depends(require_service_key)]
        )

    install_middleware(app, settings)
    return app


def install_middleware(app: FastAPI, settings: BaseServiceSettings) -> None:
    """Added innermost first: the last one added sees the request first."""
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials="*" not in settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(
        TrustedHostMiddleware,
        allowed_hosts=settings.trusted_hosts,
        exempt_paths=MONITORING_PATHS | {"/health/live"},
    )
    # Before the host check: a monitoring path from outside is 404 whatever its Host.
    app.add_middleware(MonitoringNetworkMiddleware, networks=settings.monitoring_networks)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(
        MetricsMiddleware,
        service=settings.service_name,
        skip_paths=frozenset({"/health/live", "/health/ready", "/metrics"}),
    )
    app.add_middleware(CorrelationIdMiddleware)


async def _start(
    app: FastAPI,
    settings: BaseServiceSettings,
    events: EventsConfig,
    jwks_fetcher: JWKSFetcher | None,
) -> None:
    health: HealthRegistry = app.state.health
    redis = create_redis(settings)
    app.state.redis = redis
    health.add("redis", redis.ping)

    database: Database | None = None
    if settings.database_url is not None:
        engine = create_engine(
            settings.database_url.get_secret_value(),
            schema=settings.db_schema,
            application_name=settings.service_name,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
        database = Database(engine)
        health.add("database", database.ping)
    app.state.database = database

    jwks = JWKSCache(
        jwks_fetcher or http_jwks_fetcher(settings.jwks_url),
        algorithms=settings.jwt_algorithms,
        cache_seconds=settings.jwks_cache_seconds,
        refetch_cooldown_seconds=settings.jwks_refetch_cooldown_seconds,
    )
    app.state.token_verifier = TokenVerifier(
        jwks,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        algorithms=settings.jwt_algorithms,
        redis=redis,
        redis_prefix=settings.redis_key_prefix,
    )

    app.state.relay = None
    app.state.consumer = None
    if database is not None and events.outbox is not None:
        from flow_shared.events.relay import OutboxRelay
        from flow_shared.events.topology import fleet_topology

        relay = OutboxRelay(
            database=database,
            outbox=events.outbox,
            amqp_url=settings.amqp_url.get_secret_value(),
            exchange=settings.events_exchange,
            service=settings.service_name,
            topology=(
                fleet_topology(settings.events_exchange)
                if settings.events_declare_fleet_topology
                else None
            ),
            unroutable_retry_seconds=settings.events_unroutable_retry_seconds,
        )
        await relay.start()
        app.state.relay = relay
        app.state.forget_relay_waker = database.wake_relays_on_commit(events.outbox, relay.nudge)
        # The outbox keeps events while the broker is away, so this is reported, not fatal.
        health.add("broker", relay.check_connected, critical=False)
    if database is not None and events.inbox is not None and events.handlers:
        from flow_shared.events.topology import fleet_topology

        consumer = EventConsumer(
            database=database,
            inbox=events.inbox,
            amqp_url=settings.amqp_url.get_secret_value(),
            exchange=settings.events_exchange,
            service=settings.service_name,
            handlers=events.handlers,
            topology=fleet_topology(settings.events_exchange),
        )
        await consumer.start()
        app.state.consumer = consumer
        health.add("broker_consumer", consumer.check_connected)


async def _stop(app: FastAPI) -> None:
    # Consumers first (finish and ack what is in hand), then the relay, then the pools.
    if app.state.consumer is not None:
        await app.state.consumer.stop()
    if app.state.relay is not None:
        app.state.forget_relay_waker()
        await app.state.relay.stop()
    if app.state.database is not None:
        await app.state.database.dispose()
    await app.state.redis.aclose()
