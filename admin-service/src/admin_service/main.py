"""admin-service app factory (`uvicorn admin_service.main:create_app --factory`)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from admin_service import allocation, shortages
from admin_service.api import router
from admin_service.clients import FleetHealthClient, UserServiceClient
from admin_service.config import Settings
from admin_service.events import event_handlers
from admin_service.models import inbox, outbox
from flow_shared.app import EventsConfig, create_service_app
from flow_shared.auth import JWKSFetcher
from flow_shared.clock import Clock, utcnow
from flow_shared.lifecycle import PeriodicTask


def create_app(
    settings: Settings | None = None,
    *,
    jwks_fetcher: JWKSFetcher | None = None,
    user_service_transport: httpx.AsyncBaseTransport | None = None,
    health_transport: httpx.AsyncBaseTransport | None = None,
    order_service_transport: httpx.AsyncBaseTransport | None = None,
    location_transport: httpx.AsyncBaseTransport | None = None,
    inventory_transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock = utcnow,
) -> FastAPI:
    """`clock`: the time the routes and the shortage expiry job read (tests move it)."""
    settings = settings or Settings()

    async def open_clients(app: FastAPI) -> None:
        app.state.user_service = UserServiceClient(settings, transport=user_service_transport)
        app.state.order_service = allocation.OrderServiceClient(
            settings, transport=order_service_transport
        )
        app.state.fleet_health = FleetHealthClient(
            settings.fleet_urls(),
            timeout_seconds=settings.health_check_timeout_seconds,
            transport=health_transport,
        )
        app.state.area_members = shortages.AreaMembersClient(
            settings,
            location_transport=location_transport,
            inventory_transport=inventory_transport,
        )

    def shortage_expiry(app: FastAPI) -> PeriodicTask:
        expiry = shortages.ShortageExpiry(app.state.database, clock=clock)
        return PeriodicTask(
            "shortage-expiry", settings.shortage_expiry_interval_seconds, expiry.run_once
        )

    async def close_clients(app: FastAPI) -> None:
        await app.state.area_members.aclose()
        await app.state.user_service.aclose()
        await app.state.order_service.aclose()
        await app.state.fleet_health.aclose()

    return create_service_app(
        settings,
        title="Flow admin-service",
        routers=[router, allocation.router, *shortages.ROUTERS],
        # Every event of the platform feeds the stats and audit projection; shortage.*
        # go out through the outbox.
        events=EventsConfig(outbox=outbox, inbox=inbox, handlers=event_handlers()),
        jwks_fetcher=jwks_fetcher,
        on_startup=[open_clients],
        on_shutdown=[close_clients],
        periodic=[shortage_expiry],
        clock=clock,
    )
