"""inventory-service app factory (`uvicorn inventory_service.main:create_app --factory`)."""

from __future__ import annotations

from functools import partial

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.app import EventsConfig, create_service_app
from flow_shared.auth import JWKSFetcher
from flow_shared.clock import Clock, utcnow
from flow_shared.events.consumer import EventHandler, EventHandlers
from flow_shared.events.envelope import EventEnvelope
from flow_shared.lifecycle import PeriodicTask
from flow_shared.unit_of_work import current_unit_of_work
from inventory_service import api, internal
from inventory_service.cache import bump_generation
from inventory_service.clients import Upstreams
from inventory_service.config import Settings
from inventory_service.consumers import supply_handlers, vendor_handlers
from inventory_service.metrics import GAUGE_REFRESH_INTERVAL_SECONDS, InventoryGauges
from inventory_service.models import inbox, outbox
from inventory_service.service.auto_reorder import AutoReorderSender
from inventory_service.service.supply import RunwayAlertJob
from inventory_service.sweeper import ReservationSweeper


def create_app(
    settings: Settings | None = None,
    *,
    jwks_fetcher: JWKSFetcher | None = None,
    clock: Clock = utcnow,
    location_transport: httpx.AsyncBaseTransport | None = None,
    order_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """`clock`: the time the runway's routes, consumers and alert job read (tests move it)."""
    settings = settings or Settings()
    app: FastAPI

    async def open_upstreams(app: FastAPI) -> None:
        app.state.upstreams = Upstreams.create(
            settings, location_transport=location_transport, order_transport=order_transport
        )

    async def close_upstreams(app: FastAPI) -> None:
        await app.state.upstreams.aclose()

    def invalidating(handler: EventHandler) -> EventHandler:
        """A vendor projection change is a catalogue change: bump the generation once
        committed."""

        async def handle(session: AsyncSession, envelope: EventEnvelope) -> None:
            await handler(session, envelope)
            current_unit_of_work(session).after_commit(
                partial(bump_generation, app.state.redis, settings.redis_key_prefix)
            )

        return handle

    def reservation_sweeper(app: FastAPI) -> PeriodicTask:
        sweeper = ReservationSweeper(
            app.state.database,
            app.state.redis,
            redis_prefix=settings.redis_key_prefix,
            batch_size=settings.reservation_sweep_batch_size,
        )
        app.state.sweeper = sweeper
        return PeriodicTask(
            "reservation-sweeper", settings.reservation_sweep_interval_seconds, sweeper.run_once
        )

    def inventory_gauges(app: FastAPI) -> PeriodicTask:
        gauges = InventoryGauges(app.state.database)
        app.state.inventory_gauges = gauges
        return PeriodicTask("inventory-gauges", GAUGE_REFRESH_INTERVAL_SECONDS, gauges.refresh)

    def runway_alerts(app: FastAPI) -> PeriodicTask:
        job = RunwayAlertJob(
            app.state.database, clock=clock, batch_size=settings.runway_alert_batch_size
        )
        app.state.runway_alerts = job
        return PeriodicTask("runway-alerts", settings.runway_alert_interval_seconds, job.run_once)

    def auto_reorder_sender(app: FastAPI) -> PeriodicTask:
        sender = AutoReorderSender(app.state.database, app.state.upstreams.order, clock=clock)
        app.state.auto_reorder_sender = sender
        return PeriodicTask(
            "auto-reorder-sender", settings.auto_reorder_interval_seconds, sender.run_once
        )

    app = create_service_app(
        settings,
        title="Flow inventory-service",
        routers=api.routers,
        internal_routers=[internal.router],
        events=EventsConfig(
            outbox=outbox,
            inbox=inbox,
            handlers=EventHandlers(
                {name: invalidating(fn) for name, fn in vendor_handlers().items()},
                supply_handlers(clock),
            ),
        ),
        jwks_fetcher=jwks_fetcher,
        on_startup=[open_upstreams],
        on_shutdown=[close_upstreams],
        periodic=[reservation_sweeper, inventory_gauges, runway_alerts, auto_reorder_sender],
        clock=clock,
    )
    return app
