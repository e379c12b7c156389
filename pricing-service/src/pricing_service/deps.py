"""Request dependencies of pricing-service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from redis.asyncio import Redis

from flow_shared.app_state import app_state
from flow_shared.auth import Principal, require_org_kind
from pricing_service.clients import InventoryClient, LocationClient
from pricing_service.config import Settings

AppSettings = Annotated[Settings, Depends(app_state("settings", Settings))]
Inventory = Annotated[InventoryClient, Depends(app_state("inventory", InventoryClient))]
Location = Annotated[LocationClient, Depends(app_state("location", LocationClient))]
RedisClient = Annotated[Redis, Depends(app_state("redis", Redis))]
VendorUser = Annotated[Principal, Depends(require_org_kind("vendor"))]
HospitalUser = Annotated[Principal, Depends(require_org_kind("hospital"))]
