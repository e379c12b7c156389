"""Public admin API: vendor organisations (platform admins only)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query

from admin_service import service
from admin_service.deps import UserService
from admin_service.schemas import SuspendVendorRequest, VendorOrganization, VendorPage
from flow_shared.auth import PlatformAdmin
from flow_shared.db import DbSession
from flow_shared.pagination import Pagination

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


@router.get("/vendors")
async def list_vendors(
    _admin: PlatformAdmin,
    users: UserService,
    pagination: Pagination,
    verified: Annotated[
        bool | None, Query(description="false lists vendors awaiting verification")
    ] = None,
) -> VendorPage:
    return await service.list_vendors(users, verified=verified, params=pagination)


@router.post("/vendors/{org_id}/verify")
async def verify_vendor(
    org_id: uuid.UUID, admin: PlatformAdmin, users: UserService, session: DbSession
) -> VendorOrganization:
    return await service.verify_vendor(session, users, admin, org_id)


@router.post("/vendors/{org_id}/suspend")
async def suspend_vendor(
    org_id: uuid.UUID,
    admin: PlatformAdmin,
    users: UserService,
    session: DbSession,
    body: Annotated[SuspendVendorRequest | None, Body()] = None,
) -> VendorOrganization:
    reason = body.reason if body is not None else None
    return await service.suspend_vendor(session, users, admin, org_id, reason=reason)
