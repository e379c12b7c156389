"""/internal API for admin-service (X-Service-Key is enforced by the shared app).

GET  /internal/organizations/vendors?verified=&page=&page_size=  -> Page[VendorItem]
POST /internal/organizations/{org_id}/verify   {actor_id}          -> VendorItem
POST /internal/organizations/{org_id}/suspend  {actor_id, reason?} -> VendorItem
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from flow_shared.db import DbSession
from flow_shared.pagination import Page, Pagination
from user_service import service
from user_service.deps import RedisDep, SettingsDep
from user_service.schemas import SuspendVendorRequest, VendorItem, VerifyVendorRequest

router = APIRouter(prefix="/internal/organizations", tags=["internal"])


@router.get("/vendors")
async def list_vendors(
    session: DbSession,
    pagination: Pagination,
    verified: bool | None = None,
) -> Page[VendorItem]:
    """Vendor organisations, oldest first; `verified=false` is the verification queue."""
    vendors, total = await service.list_vendors(session, verified=verified, params=pagination)
    return Page[VendorItem].of([VendorItem.model_validate(v) for v in vendors], pagination, total)


@router.post("/{org_id}/verify")
async def verify_vendor(
    org_id: uuid.UUID, body: VerifyVendorRequest, session: DbSession
) -> VendorItem:
    vendor = await service.verify_vendor(session, org_id, actor_id=body.actor_id)
    return VendorItem.model_validate(vendor)


@router.post("/{org_id}/suspend")
async def suspend_vendor(
    org_id: uuid.UUID,
    body: SuspendVendorRequest,
    session: DbSession,
    redis: RedisDep,
    settings: SettingsDep,
) -> VendorItem:
    vendor = await service.suspend_vendor(
        session,
        org_id,
        redis=redis,
        settings=settings,
        actor_id=body.actor_id,
        reason=body.reason,
    )
    return VendorItem.model_validate(vendor)
