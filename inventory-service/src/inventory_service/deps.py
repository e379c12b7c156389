"""Typed access to what the app built at start-up, and the request dependencies
shared by the routers."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import Depends
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.app_state import app_state
from flow_shared.auth import Principal, require_org_kind
from flow_shared.db import Database, get_database
from flow_shared.unit_of_work import RequestUnitOfWork
from inventory_service.cache import bump_generation
from inventory_service.clients import Upstreams
from inventory_service.config import Settings

SettingsDep = Annotated[Settings, Depends(app_state("settings", Settings))]
RedisDep = Annotated[Redis, Depends(app_state("redis", Redis))]
DatabaseDep = Annotated[Database, Depends(get_database)]
UpstreamsDep = Annotated[Upstreams, Depends(app_state("upstreams", Upstreams))]


async def _catalog_write_session(
    uow: RequestUnitOfWork, redis: RedisDep, settings: SettingsDep
) -> AsyncSession:
    """The request's session (the same one DbSession gives), and once its unit of work
    has committed the catalogue generation moves on, so the next nearby call sees the
    change."""
    uow.after_commit(partial(bump_generation, redis, settings.redis_key_prefix))
    return uow.session


# For every request that changes stock or reservations.
CatalogWriteSession = Annotated[AsyncSession, Depends(_catalog_write_session)]

# Depots and stock are vendor business: hospitals and platform staff get 403.
VendorUser = Annotated[Principal, Depends(require_org_kind("vendor"))]
# A site's supply is reported by its hospital.
HospitalUser = Annotated[Principal, Depends(require_org_kind("hospital"))]
