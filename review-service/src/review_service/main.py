"""review-service app factory (`uvicorn review_service.main:create_app --factory`)."""

from __future__ import annotations

from fastapi import FastAPI

from flow_shared.app import EventsConfig, create_service_app
from flow_shared.auth import JWKSFetcher
from review_service import api
from review_service.config import Settings
from review_service.events import event_handlers
from review_service.models import inbox, outbox


def create_app(
    settings: Settings | None = None, *, jwks_fetcher: JWKSFetcher | None = None
) -> FastAPI:
    settings = settings or Settings()
    return create_service_app(
        settings,
        title="Flow review-service",
        routers=[api.router],
        events=EventsConfig(outbox=outbox, inbox=inbox, handlers=event_handlers()),
        jwks_fetcher=jwks_fetcher,
    )
