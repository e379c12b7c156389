"""Request dependencies of pricing-service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from flow_shared.auth import Principal, require_org_kind
from pricing_service.clients import InventoryClient, LocationClient
from pricing_service.config import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_inventory(request: Request) -> InventoryClient:
    client: InventoryClient = request.app.state.inventory
    return client


async def get_location(request: Request) -> LocationClient:
    client: LocationClient = request.app.state.location
    return client


async def get_redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


AppSettings = Annotated[Settings, Depends(get_settings)]
Inventory = Annotated[InventoryClient, Depends(get_inventory)]
Location = Annotated[LocationClient, Depends(get_location)]
RedisClient = Annotated[Redis, Depends(get_redis)]
VendorUser = Annotated[Principal, Depends(require_org_kind("vendor"))]
HospitalUser = Annotated[Principal, Depends(require_org_kind("hospital"))]
