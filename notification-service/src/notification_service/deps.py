"""Typed access to what the app built at start-up, for the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from flow_shared.auth import Principal, require_role
from flow_shared.db import Database, get_database
from notification_service.config import Settings
from notification_service.hub import NotificationHub


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _hub(request: Request) -> NotificationHub:
    hub: NotificationHub = request.app.state.notification_hub
    return hub


SettingsDep = Annotated[Settings, Depends(_settings)]
HubDep = Annotated[NotificationHub, Depends(_hub)]
DatabaseDep = Annotated[Database, Depends(get_database)]
# Preferences are the organisation's (its e-mail and its webhook): its admins set them.
OrgAdmin = Annotated[Principal, Depends(require_role("org_admin"))]
