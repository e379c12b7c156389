"""Request dependencies of payment-service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from payment_service.config import Settings
from payment_service.provider import PaymentProvider


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _provider(request: Request) -> PaymentProvider:
    provider: PaymentProvider = request.app.state.provider
    return provider


SettingsDep = Annotated[Settings, Depends(_settings)]
ProviderDep = Annotated[PaymentProvider, Depends(_provider)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Same key and body replays the first answer; another body is 422.",
    ),
]
