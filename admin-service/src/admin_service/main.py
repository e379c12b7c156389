"""admin-service app factory (`uvicorn admin_service.main:create_app --factory`)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from admin_service.api import router
from admin_service.clients import UserServiceClient
from admin_service.config import Settings
from flow_shared.app import create_service_app
from flow_shared.auth import JWKSFetcher


def create_app(
    settings: Settings | None = None,
    *,
    jwks_fetcher: JWKSFetcher | None = None,
    user_service_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    settings = settings or Settings()

    async def open_user_service(app: FastAPI) -> None:
        app.state.user_service = UserServiceClient(settings, transport=user_service_transport)

    async def close_user_service(app: FastAPI) -> None:
        await app.state.user_service.aclose()

    return create_service_app(
        settings,
        title="Flow admin-service",
        routers=[router],
        jwks_fetcher=jwks_fetcher,
        on_startup=[open_user_service],
        on_shutdown=[close_user_service],
    )
