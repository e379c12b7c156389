"""order-service app factory (`uvicorn order_service.main:create_app --factory`)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from flow_shared.app import EventsConfig, create_service_app
from flow_shared.auth import JWKSFetcher
from flow_shared.clock import Clock, utcnow
from flow_shared.lifecycle import PeriodicTask
from order_service import internal
from order_service.api import allocation_router, router, sos_router
from order_service.clients import Upstreams
from order_service.config import Settings
from order_service.consumers import event_handlers
from order_service.metrics import GAUGE_REFRESH_INTERVAL_SECONDS, OpenOrderGauges
from order_service.models import inbox, outbox
from order_service.service.expiry import OrderSweeper
from order_service.service.sos import SosSweeper


def create_app(
    settings: Settings | None = None,
    *,
    jwks_fetcher: JWKSFetcher | None = None,
    inventory_transport: httpx.AsyncBaseTransport | None = None,
    pricing_transport: httpx.AsyncBaseTransport | None = None,
    location_transport: httpx.AsyncBaseTransport | None = None,
    payment_transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock = utcnow,
) -> FastAPI:
    """`clock`: the time the order and SOS sweepers and the app's `Now` read."""
    settings = settings or Settings()

    async def open_upstreams(app: FastAPI) -> None:
        app.state.upstreams = Upstreams.create(
            settings,
            location_transport=location_transport,
            inventory_transport=inventory_transport,
            pricing_transport=pricing_transport,
            payment_transport=payment_transport,
        )

    async def close_upstreams(app: FastAPI) -> None:
        await app.state.upstreams.aclose()

    def order_sweeper(app: FastAPI) -> PeriodicTask:
        sweeper = OrderSweeper(
            app.state.database, app.state.upstreams.inventory, settings, clock=clock
        )
        app.state.order_sweeper = sweeper
        return PeriodicTask(
            "order-sweeper", settings.order_sweep_interval_seconds, sweeper.run_once
        )

    def sos_sweeper(app: FastAPI) -> PeriodicTask:
        sweeper = SosSweeper(app.state.database, app.state.upstreams, settings, clock=clock)
        app.state.sos_sweeper = sweeper
        return PeriodicTask("sos-sweeper", settings.sos_sweep_interval_seconds, sweeper.run_once)

    def open_order_gauges(app: FastAPI) -> PeriodicTask:
        gauges = OpenOrderGauges(app.state.database)
        app.state.open_order_gauges = gauges
        return PeriodicTask("open-order-gauges", GAUGE_REFRESH_INTERVAL_SECONDS, gauges.refresh)

    return create_service_app(
        settings,
        title="Flow order-service",
        routers=[router, allocation_router, sos_router],
        internal_routers=[internal.router],
        events=EventsConfig(outbox=outbox, inbox=inbox, handlers=event_handlers()),
        jwks_fetcher=jwks_fetcher,
        on_startup=[open_upstreams],
        on_shutdown=[close_upstreams],
        periodic=[order_sweeper, sos_sweeper, open_order_gauges],
        clock=clock,
    )
