"""Typed access to what the app built at start-up (settings, keys, hasher, Redis, database)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from flow_shared.app_state import app_state
from flow_shared.db import Database, get_database
from flow_shared.networks import forwarded_client_ip
from user_service.clients import NotificationClient
from user_service.config import Settings
from user_service.keys import SigningKeys
from user_service.passwords import Passwords


async def _client_ip(request: Request) -> str:
    # The gateway's X-Flow-Client-IP (it drops any client-sent X-Flow-* header), else the peer.
    return forwarded_client_ip(request)[:64]


SettingsDep = Annotated[Settings, Depends(app_state("settings", Settings))]
SigningKeysDep = Annotated[SigningKeys, Depends(app_state("signing_keys", SigningKeys))]
PasswordsDep = Annotated[Passwords, Depends(app_state("passwords", Passwords))]
RedisDep = Annotated[Redis, Depends(app_state("redis", Redis))]
ClientIpDep = Annotated[str, Depends(_client_ip)]
NotificationClientDep = Annotated[
    NotificationClient, Depends(app_state("notification_client", NotificationClient))
]
# For handlers that own their transaction (an error answer whose writes must commit).
DatabaseDep = Annotated[Database, Depends(get_database)]
