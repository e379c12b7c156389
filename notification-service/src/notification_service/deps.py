"""Typed access to what the app built at start-up, for the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from flow_shared.app_state import app_state
from flow_shared.auth import Principal, TokenVerifier, require_role
from flow_shared.db import Database, get_database
from notification_service.config import Settings
from notification_service.hub import NotificationHub
from notification_service.stream_leases import StreamLeases
from notification_service.webhook_secrets import WebhookSecretCipher


async def _webhook_secret_cipher(request: Request) -> WebhookSecretCipher | None:
    # None when WEBHOOK_SECRETS_KEY is not set: webhooks are unavailable. Not app_state,
    # which checks against one class and so cannot let None through.
    cipher: WebhookSecretCipher | None = request.app.state.webhook_secret_cipher
    return cipher


SettingsDep = Annotated[Settings, Depends(app_state("settings", Settings))]
HubDep = Annotated[NotificationHub, Depends(app_state("notification_hub", NotificationHub))]
StreamLeasesDep = Annotated[StreamLeases, Depends(app_state("stream_leases", StreamLeases))]
# The one CurrentPrincipal verifies with: the SSE stream verifies its token again with it.
TokenVerifierDep = Annotated[TokenVerifier, Depends(app_state("token_verifier", TokenVerifier))]
WebhookSecretCipherDep = Annotated[WebhookSecretCipher | None, Depends(_webhook_secret_cipher)]
DatabaseDep = Annotated[Database, Depends(get_database)]
# Preferences are the organisation's (its e-mail and its webhook): its admins set them.
OrgAdmin = Annotated[Principal, Depends(require_role("org_admin"))]
