"""location-service app factory (`uvicorn location_service.main:create_app --factory`)."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import structlog
from fastapi import FastAPI

from flow_shared.app import create_service_app
from flow_shared.auth import JWKSFetcher
from location_service.api import router
from location_service.clients import NominatimClient
from location_service.config import Settings
from location_service.geocoding import GazetteerLoader, Geocoder
from location_service.internal import router as internal_router

log = structlog.get_logger("location_service.main")


def create_app(
    settings: Settings | None = None,
    *,
    jwks_fetcher: JWKSFetcher | None = None,
    geocoder_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    settings = settings or Settings()

    async def open_geocoder(app: FastAPI) -> None:
        loader = GazetteerLoader(settings.gazetteer_min_population)
        external = (
            NominatimClient(settings, transport=geocoder_transport)
            if settings.geocoder_url is not None
            else None
        )
        app.state.geocoder = Geocoder(loader, external)
        app.state.gazetteer_warmup = None
        if settings.gazetteer_preload:
            warmup = asyncio.create_task(loader.get(), name="gazetteer-warmup")
            warmup.add_done_callback(_log_warmup_failure)
            app.state.gazetteer_warmup = warmup

    async def close_geocoder(app: FastAPI) -> None:
        warmup: asyncio.Task[object] | None = app.state.gazetteer_warmup
        if warmup is not None and not warmup.done():
            warmup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warmup
        geocoder: Geocoder = app.state.geocoder
        if isinstance(geocoder.external, NominatimClient):
            await geocoder.external.aclose()

    return create_service_app(
        settings,
        title="Flow location-service",
        routers=[router],
        internal_routers=[internal_router],
        jwks_fetcher=jwks_fetcher,
        on_startup=[open_geocoder],
        on_shutdown=[close_geocoder],
    )


def _log_warmup_failure(task: asyncio.Task[object]) -> None:
    # A failed warm-up is retried by the first request that needs the gazetteer.
    if not task.cancelled() and task.exception() is not None:
        log.error("gazetteer_warmup_failed", error=type(task.exception()).__name__)
