"""payment-service app factory (`uvicorn payment_service.main:create_app --factory`)."""

from __future__ import annotations

from fastapi import FastAPI

from flow_shared.app import EventsConfig, create_service_app
from flow_shared.auth import JWKSFetcher
from payment_service import api
from payment_service.config import Settings
from payment_service.consumers import event_handlers
from payment_service.models import inbox, outbox
from payment_service.provider import PaymentProvider
from payment_service.sandbox import SandboxProvider


def create_app(
    settings: Settings | None = None,
    *,
    jwks_fetcher: JWKSFetcher | None = None,
    provider: PaymentProvider | None = None,
) -> FastAPI:
    """`provider`: the card provider; the built-in sandbox when not given."""
    settings = settings or Settings()
    sandbox: SandboxProvider | None = None
    if provider is None:
        sandbox = SandboxProvider.from_settings(settings)
        provider = sandbox
    handlers = event_handlers(provider, invoice_due_days=settings.invoice_due_days)

    async def close_sandbox(app: FastAPI) -> None:
        if sandbox is None:
            return
        # Handlers in flight still call the sandbox: stop consuming first (the shared
        # shutdown stopping it again afterwards is a no-op).
        if app.state.consumer is not None:
            await app.state.consumer.stop()
        await sandbox.aclose()

    app = create_service_app(
        settings,
        title="Flow payment-service",
        routers=[api.router, api.webhook_router],
        events=EventsConfig(outbox=outbox, inbox=inbox, handlers=handlers),
        jwks_fetcher=jwks_fetcher,
        on_shutdown=[close_sandbox],
    )
    app.state.provider = provider
    app.state.event_handlers = handlers
    return app
