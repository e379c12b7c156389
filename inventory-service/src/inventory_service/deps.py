"""Typed access to what the app built at start-up, and the request dependencies
shared by the routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.auth import Principal, require_org_kind
from flow_shared.db import Database, get_database
from inventory_service.cache import bump_generation
from inventory_service.config import Settings


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


SettingsDep = Annotated[Settings, Depends(_settings)]
RedisDep = Annotated[Redis, Depends(_redis)]
DatabaseDep = Annotated[Database, Depends(get_database)]


async def _catalog_write_session(
    database: DatabaseDep, redis: RedisDep, settings: SettingsDep
) -> AsyncIterator[AsyncSession]:
    """Like DbSession (one transaction, committed before the response), and once it has
    committed the catalogue generation moves on, so the next nearby call sees the change."""
    async with database.sessionmaker() as session:
        async with session.begin():
            yield session
        await bump_generation(redis, settings.redis_key_prefix)


# For every request that changes stock or reservations.
CatalogWriteSession = Annotated[AsyncSession, Depends(_catalog_write_session, scope="function")]

# Depots and stock are vendor business: hospitals and platform staff get 403.
VendorUser = Annotated[Principal, Depends(require_org_kind("vendor"))]
