"""user-service: identity, JWT issuing (and its JWKS), organisations and members."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from flow_shared.app import EventsConfig, create_service_app
from flow_shared.auth import JWKSFetcher
from flow_shared.clock import Clock, utcnow
from flow_shared.lifecycle import PeriodicTask
from user_service import api, bootstrap, internal
from user_service.clients import NotificationClient
from user_service.config import Settings
from user_service.keys import SigningKeys
from user_service.models import outbox
from user_service.passwords import Passwords
from user_service.service import licences


def create_app(
    settings: Settings | None = None,
    *,
    jwks_fetcher: JWKSFetcher | None = None,
    notification_transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock = utcnow,
) -> FastAPI:
    """`clock`: the time the licence job and the app's `Now` read (tests move it)."""
    settings = settings or Settings()
    # Fails here, before serving anything, when no usable signing key is configured
    # (JWT_PRIVATE_KEYS, else the key folder).
    keys = SigningKeys.from_settings(settings)

    async def own_jwks() -> dict[str, Any]:
        # user-service verifies its own tokens without an HTTP call to itself.
        return keys.jwks()

    async def close_clients(app: FastAPI) -> None:
        await app.state.notification_client.aclose()

    def license_check(app: FastAPI) -> PeriodicTask:
        async def run_once() -> licences.LicensePassResult:
            return await licences.run_license_pass(
                app.state.database, app.state.redis, settings, now=clock()
            )

        return PeriodicTask("license-check", settings.license_check_interval_seconds, run_once)

    app = create_service_app(
        settings,
        title="Flow user-service",
        routers=api.routers,
        internal_routers=[internal.router],
        events=EventsConfig(outbox=outbox),
        jwks_fetcher=jwks_fetcher or own_jwks,
        on_startup=[bootstrap.on_startup],
        on_shutdown=[bootstrap.on_shutdown, close_clients],
        periodic=[license_check],
        clock=clock,
    )
    app.state.signing_keys = keys
    app.state.passwords = Passwords.from_settings(settings)
    # Invitation e-mails (tests pass a transport standing in for notification-service).
    app.state.notification_client = NotificationClient(settings, transport=notification_transport)
    return app
