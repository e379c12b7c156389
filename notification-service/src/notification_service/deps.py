"""Typed access to what the app built at start-up, for the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from flow_shared.auth import Principal, require_role
from flow_shared.db import Database, get_database
from notification_service.config import Settings
from notification_service.hub import NotificationHub
from notification_service.stream_leases import StreamLeases
from notification_service.webhook_secrets import WebhookSecretCipher


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _hub(request: Request) -> NotificationHub:
    hub: NotificationHub = request.app.state.notification_hub
    return hub


async def _stream_leases(request: Request) -> StreamLeases:
    leases: StreamLeases = request.app.state.stream_leases
    return leases


async def _webhook_secret_cipher(request: Request) -> WebhookSecretCipher | None:
    # None when WEBHOOK_SECRETS_KEY is not set: webhooks are unavailable.
    cipher: WebhookSecretCipher | None = request.app.state.webhook_secret_cipher
    return cipher


SettingsDep = Annotated[Settings, Depends(_settings)]
HubDep = Annotated[NotificationHub, Depends(_hub)]
StreamLeasesDep = Annotated[StreamLeases, Depends(_stream_leases)]
WebhookSecretCipherDep = Annotated[WebhookSecretCipher | None, Depends(_webhook_secret_cipher)]
DatabaseDep = Annotated[Database, Depends(get_database)]
# Preferences are the organisation's (its e-mail and its webhook): its admins set them.
OrgAdmin = Annotated[Principal, Depends(require_role("org_admin"))]
