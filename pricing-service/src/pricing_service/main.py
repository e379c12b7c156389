"""pricing-service app factory (`uvicorn pricing_service.main:create_app --factory`)."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI

from flow_shared.app import create_service_app
from flow_shared.auth import JWKSFetcher
from flow_shared.lifecycle import PeriodicTask
from pricing_service import api, internal
from pricing_service.clients import InventoryClient, LocationClient
from pricing_service.config import Settings
from pricing_service.pruner import QuotePruner


def create_app(
    settings: Settings | None = None,
    *,
    jwks_fetcher: JWKSFetcher | None = None,
    inventory_transport: httpx.AsyncBaseTransport | None = None,
    location_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    settings = settings or Settings()

    async def open_clients(app: FastAPI) -> None:
        app.state.inventory = InventoryClient(settings, transport=inventory_transport)
        app.state.location = LocationClient(settings, transport=location_transport)

    async def close_clients(app: FastAPI) -> None:
        await app.state.inventory.aclose()
        await app.state.location.aclose()

    def quote_pruner(app: FastAPI) -> PeriodicTask:
        pruner = QuotePruner(
            app.state.database,
            retention=timedelta(seconds=settings.quote_retention_seconds),
            batch_size=settings.quote_prune_batch_size,
        )
        app.state.quote_pruner = pruner
        return PeriodicTask("quote-pruner", settings.quote_prune_interval_seconds, pruner.run_once)

    return create_service_app(
        settings,
        title="Flow pricing-service",
        routers=[api.router],
        internal_routers=[internal.router],
        jwks_fetcher=jwks_fetcher,
        on_startup=[open_clients],
        on_shutdown=[close_clients],
        periodic=[quote_pruner],
    )
