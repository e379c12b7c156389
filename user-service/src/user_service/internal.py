"""/internal API for admin-service (X-Service-Key is enforced by the shared app).

GET  /internal/organizations?kind=&verified=&suspended=&page=&page_size=
                                                    -> Page[OrganizationItem]
GET  /internal/organizations/vendors?verified=&page=&page_size=  -> Page[VendorItem]
POST /internal/organizations/{org_id}/verify   {actor_id, license_expires_on?}
POST /internal/organizations/{org_id}/suspend  {actor_id, reason?}
POST /internal/organizations/{org_id}/reinstate {actor_id}       -> OrganizationItem
The three actions take any hospital or vendor; `?kind=vendor` (the admin's vendor
paths) makes any other kind 404. They answer the OrganizationItem (a superset of the
VendorItem they answered before).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from flow_shared.auth import accepts_callers
from flow_shared.pagination import Page, Pagination
from flow_shared.unit_of_work import DbSession
from user_service.deps import RedisDep, SettingsDep
from user_service.schemas import (
    OrganizationItem,
    ReinstateRequest,
    SuspendVendorRequest,
    VendorItem,
    VerifyVendorRequest,
)
from user_service.service import organizations, suspension

ManagedKind = Literal["hospital", "vendor"]
KindFilter = Annotated[ManagedKind | None, Query(description="only this kind")]

router = APIRouter(
    prefix="/internal/organizations",
    tags=["internal"],
    dependencies=[accepts_callers("admin-service")],
)


@router.get("")
async def list_organizations(
    session: DbSession,
    pagination: Pagination,
    kind: KindFilter = None,
    verified: bool | None = None,
    suspended: bool | None = None,
) -> Page[OrganizationItem]:
    """Hospitals and vendors, oldest first; `verified=false` is the verification queue."""
    found, total = await organizations.list_organizations(
        session, kind=kind, verified=verified, suspended=suspended, params=pagination
    )
    return Page[OrganizationItem].of(
        [OrganizationItem.model_validate(o) for o in found], pagination, total
    )


@router.get("/vendors")
async def list_vendors(
    session: DbSession,
    pagination: Pagination,
    verified: bool | None = None,
) -> Page[VendorItem]:
    """Vendor organisations, oldest first; `verified=false` is the verification queue."""
    vendors, total = await organizations.list_vendors(session, verified=verified, params=pagination)
    return Page[VendorItem].of([VendorItem.model_validate(v) for v in vendors], pagination, total)


@router.post("/{org_id}/verify")
async def verify_organization(
    org_id: uuid.UUID, body: VerifyVendorRequest, session: DbSession, kind: KindFilter = None
) -> OrganizationItem:
    organization = await organizations.verify_organization(
        session,
        org_id,
        actor_id=body.actor_id,
        license_expires_on=body.license_expires_on,
        kind=kind,
    )
    return OrganizationItem.model_validate(organization)


@router.post("/{org_id}/suspend")
async def suspend_organization(
    org_id: uuid.UUID,
    body: SuspendVendorRequest,
    session: DbSession,
    redis: RedisDep,
    settings: SettingsDep,
    kind: KindFilter = None,
) -> OrganizationItem:
    organization = await suspension.suspend_organization(
        session,
        org_id,
        redis=redis,
        settings=settings,
        actor_id=body.actor_id,
        reason=body.reason,
        kind=kind,
    )
    return OrganizationItem.model_validate(organization)


@router.post("/{org_id}/reinstate")
async def reinstate_organization(
    org_id: uuid.UUID,
    body: ReinstateRequest,
    session: DbSession,
    redis: RedisDep,
    settings: SettingsDep,
) -> OrganizationItem:
    organization = await suspension.reinstate_organization(
        session, org_id, redis=redis, settings=settings, actor_id=body.actor_id
    )
    return OrganizationItem.model_validate(organization)
