"""api-gateway (:8000): the only public entrance to Flow. See routes.py for what it checks."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from api_gateway import docs, routes
from api_gateway.config import Settings
from api_gateway.proxy import UpstreamProxy
from flow_shared.app import create_service_app
from flow_shared.auth import JWKSFetcher
from flow_shared.ratelimit import RateLimiter


async def start_gateway(app: FastAPI) -> None:
    settings: Settings = app.state.gateway_settings
    proxy = UpstreamProxy.start(settings)
    app.state.proxy = proxy
    app.state.edge_policy = routes.EdgePolicy.from_settings(settings)
    app.state.rate_limiter = RateLimiter(
        app.state.redis, settings.redis_key_prefix, service=settings.service_name
    )
    app.state.openapi = docs.MergedOpenAPI(proxy, settings)
    app.state.swagger_assets_dir = docs.swagger_assets_dir()
    if settings.docs_enabled and app.state.swagger_assets_dir is None:
        docs.log.error("swagger_assets_missing", package=docs.SWAGGER_ASSETS_PACKAGE)


async def stop_gateway(app: FastAPI) -> None:
    await app.state.proxy.close()


def create_app(
    settings: Settings | None = None, *, jwks_fetcher: JWKSFetcher | None = None
) -> FastAPI:
    settings = settings or Settings()
    routers: list[APIRouter] = [routes.router]
    if settings.docs_enabled:
        routers.insert(0, docs.router)
    app = create_service_app(
        # The gateway serves its own merged /openapi.json instead of FastAPI's.
        settings.model_copy(update={"docs_enabled": False}),
        title="Flow API",
        routers=routers,
        jwks_fetcher=jwks_fetcher,
        on_startup=[start_gateway],
        on_shutdown=[stop_gateway],
    )
    app.state.gateway_settings = settings
    return app
