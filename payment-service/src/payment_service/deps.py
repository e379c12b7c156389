"""Request dependencies of payment-service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from flow_shared.app_state import app_state
from payment_service.config import Settings
from payment_service.provider import PaymentProvider


async def _provider(request: Request) -> PaymentProvider:
    # Not app_state: the provider is whatever create_app was given, typed by a Protocol,
    # so there is no class to check it against.
    provider: PaymentProvider = request.app.state.provider
    return provider


SettingsDep = Annotated[Settings, Depends(app_state("settings", Settings))]
ProviderDep = Annotated[PaymentProvider, Depends(_provider)]
