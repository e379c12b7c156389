"""payment-service app factory (`uvicorn payment_service.main:create_app --factory`)."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from fastapi import FastAPI

from flow_shared.app import EventsConfig, create_service_app
from flow_shared.auth import JWKSFetcher
from flow_shared.clock import utcnow
from flow_shared.lifecycle import PeriodicTask, run_in_batches
from payment_service import api, internal
from payment_service.config import Settings
from payment_service.consumers import event_handlers
from payment_service.models import inbox, outbox
from payment_service.provider import PaymentProvider
from payment_service.sandbox import SandboxProvider
from payment_service.service.card_tokens import prune_card_tokens

CARD_TOKEN_PRUNE_BATCH = 1000


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

    def card_token_pruner(app: FastAPI) -> PeriodicTask:
        retention = timedelta(seconds=settings.card_token_retention_seconds)

        async def prune_once() -> int:
            batch = partial(
                prune_card_tokens,
                now=utcnow(),
                retention=retention,
                batch_size=CARD_TOKEN_PRUNE_BATCH,
            )
            return await run_in_batches(
                app.state.database, batch, batch_size=CARD_TOKEN_PRUNE_BATCH
            )

        return PeriodicTask(
            "card-token-pruner", settings.card_token_prune_interval_seconds, prune_once
        )

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
        internal_routers=[internal.router],
        events=EventsConfig(
            outbox=outbox,
            inbox=inbox,
            handlers=event_handlers(provider, invoice_due_days=settings.invoice_due_days),
        ),
        jwks_fetcher=jwks_fetcher,
        on_shutdown=[close_sandbox],
        periodic=[card_token_pruner],
    )
    app.state.provider = provider
    return app
