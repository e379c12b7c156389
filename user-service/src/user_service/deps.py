"""Typed access to what the app built at start-up (settings, keys, hasher, Redis, database)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from flow_shared.db import Database, get_database
from flow_shared.networks import forwarded_client_ip
from user_service.clients import NotificationClient
from user_service.config import Settings
from user_service.keys import SigningKeys
from user_service.passwords import Passwords


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _signing_keys(request: Request) -> SigningKeys:
    keys: SigningKeys = request.app.state.signing_keys
    return keys


async def _passwords(request: Request) -> Passwords:
    passwords: Passwords = request.app.state.passwords
    return passwords


async def _redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


async def _notification_client(request: Request) -> NotificationClient:
    client: NotificationClient = request.app.state.notification_client
    return client


async def _client_ip(request: Request) -> str:
    # The gateway's X-Flow-Client-IP (it drops any client-sent X-Flow-* header), else the peer.
    return forwarded_client_ip(request)[:64]


SettingsDep = Annotated[Settings, Depends(_settings)]
SigningKeysDep = Annotated[SigningKeys, Depends(_signing_keys)]
PasswordsDep = Annotated[Passwords, Depends(_passwords)]
RedisDep = Annotated[Redis, Depends(_redis)]
ClientIpDep = Annotated[str, Depends(_client_ip)]
NotificationClientDep = Annotated[NotificationClient, Depends(_notification_client)]
# For handlers that own their transaction (an error answer whose writes must commit).
DatabaseDep = Annotated[Database, Depends(get_database)]
