"""Public admin API (platform admins only): vendor and hospital organisations, stats,
audit, health."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query

from admin_service import service
from admin_service.deps import FleetHealthProbe, OwnHealthChecks, UserService
from admin_service.schemas import (
    AuditPage,
    FleetHealth,
    Organization,
    OrganizationKind,
    OrganizationPage,
    PlatformStats,
    SuspendOrganizationRequest,
    SuspendVendorRequest,
    VendorOrganization,
    VendorPage,
    VerifyOrganizationRequest,
)
from flow_shared.auth import PlatformAdmin
from flow_shared.clock import Now
from flow_shared.pagination import Pagination
from flow_shared.unit_of_work import DbSession
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


@router.get("/organizations")
async def list_organizations(
    _admin: PlatformAdmin,
    users: UserService,
    pagination: Pagination,
    kind: OrganizationKind | None = None,
    verified: Annotated[
        bool | None, Query(description="false lists those awaiting verification")
    ] = None,
    suspended: bool | None = None,
) -> OrganizationPage:
    return await service.list_organizations(
        users, kind=kind, verified=verified, suspended=suspended, params=pagination
    )


@router.post("/organizations/{org_id}/verify")
async def verify_organization(
    org_id: uuid.UUID,
    body: VerifyOrganizationRequest,
    admin: PlatformAdmin,
    users: UserService,
    session: DbSession,
) -> Organization:
    """Verify a hospital or vendor with its licence expiry, or renew that licence."""
    return await service.verify_organization(
        session, users, admin, org_id, license_expires_on=body.license_expires_on
    )


@router.post("/organizations/{org_id}/suspend")
async def suspend_organization(
    org_id: uuid.UUID,
    body: SuspendOrganizationRequest,
    admin: PlatformAdmin,
    users: UserService,
    session: DbSession,
) -> Organization:
    return await service.suspend_organization(session, users, admin, org_id, reason=body.reason)


@router.post("/organizations/{org_id}/reinstate")
async def reinstate_organization(
    org_id: uuid.UUID, admin: PlatformAdmin, users: UserService, session: DbSession
) -> Organization:
    """Lift a suspension (409 while the licence has expired: verify with a new date first)."""
    return await service.reinstate_organization(session, users, admin, org_id)


@router.get("/stats")
async def platform_stats(_admin: PlatformAdmin, session: DbSession, now: Now) -> PlatformStats:
    return await service.platform_stats(session, now=now)


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
