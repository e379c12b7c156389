"""Public admin API (platform admins only): vendor organisations, stats, audit, health."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Query

from admin_service import service
from admin_service.deps import FleetHealthProbe, OwnHealthChecks, UserService
from admin_service.schemas import (
    AuditPage,
    FleetHealth,
    PlatformStats,
    SuspendVendorRequest,
    VendorOrganization,
    VendorPage,
)
from flow_shared.auth import PlatformAdmin
from flow_shared.db import DbSession
from flow_shared.pagination import Pagination
from flow_shared.validation import Text

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


@router.get("/stats")
async def platform_stats(_admin: PlatformAdmin, session: DbSession) -> PlatformStats:
    return await service.platform_stats(session, now=datetime.now(UTC))


@router.get("/audit")
async def audit(
    _admin: PlatformAdmin,
    session: DbSession,
    pagination: Pagination,
    event_type: Annotated[
        Text | None, Query(alias="type", max_length=100, description="exact event type")
    ] = None,
) -> AuditPage:
    return await service.audit_events(session, event_type=event_type, params=pagination)


@router.get("/health", response_model_exclude_none=True)
async def fleet_health(
    _admin: PlatformAdmin, probe: FleetHealthProbe, own_checks: OwnHealthChecks
) -> FleetHealth:
    return await service.fleet_health(probe, own_checks)
