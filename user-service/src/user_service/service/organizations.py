"""Organisations: who may see one, the platform admin's lists of hospitals and vendors
(admin-service, through /internal), and their verification (and licence renewal).

Suspension and reinstatement: `suspension`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.auth import Principal
from flow_shared.clock import utcnow
from flow_shared.pagination import PageParams, fetch_page
from user_service import events
from user_service.errors import OrganizationNotFound
from user_service.models import Organization

# The kinds a platform admin verifies, suspends and reinstates (never the platform itself).
MANAGED_KINDS = ("hospital", "vendor")

log = structlog.get_logger("user_service")


async def get_organization(
    session: AsyncSession, principal: Principal, org_id: uuid.UUID
) -> Organization:
    """Members and platform admins see an organisation; to anyone else it does not exist."""
    if principal.org_id != org_id and not principal.is_platform_admin:
        raise OrganizationNotFound()
    organization = await session.get(Organization, org_id)
    if organization is None:
        raise OrganizationNotFound()
    return organization


async def list_organizations(
    session: AsyncSession,
    *,
    kind: str | None,
    verified: bool | None,
    suspended: bool | None,
    params: PageParams,
) -> tuple[Sequence[Organization], int]:
    """Hospitals and vendors (one kind if asked), oldest first."""
    conditions = [Organization.kind == kind] if kind else [Organization.kind.in_(MANAGED_KINDS)]
    if verified is not None:
        conditions.append(Organization.verified.is_(verified))
    if suspended is not None:
        conditions.append(Organization.suspended.is_(suspended))
    statement = (
        select(Organization).where(*conditions).order_by(Organization.created_at, Organization.id)
    )
    return await fetch_page(session, statement, params)


async def list_vendors(
    session: AsyncSession, *, verified: bool | None, params: PageParams
) -> tuple[Sequence[Organization], int]:
    return await list_organizations(
        session, kind="vendor", verified=verified, suspended=None, params=params
    )


async def organization_for_update(
    session: AsyncSession, org_id: uuid.UUID, kind: str | None
) -> Organization:
    """The hospital or vendor (of `kind` when given), locked; anything else is 404."""
    kinds = (kind,) if kind else MANAGED_KINDS
    organization = await session.scalar(
        select(Organization)
        .where(Organization.id == org_id, Organization.kind.in_(kinds))
        .with_for_update()
    )
    if organization is None:
        what = f"{kind} organisation" if kind else "hospital or vendor organisation"
        raise OrganizationNotFound(f"No {what} with this id.")
    return organization


async def verify_organization(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    actor_id: uuid.UUID,
    license_expires_on: date | None,
    kind: str | None = None,
) -> Organization:
    """Verify, or renew the licence of, a hospital or vendor. Idempotent: the same answer
    again changes nothing and emits nothing. A new licence date is a renewal: the licence
    warnings start afresh (they are kept per date)."""
    organization = await organization_for_update(session, org_id, kind)
    renewed = (
        license_expires_on is not None and license_expires_on != organization.license_expires_on
    )
    if organization.verified and not renewed:
        return organization
    if not organization.verified:
        organization.verified = True
        organization.verified_at = utcnow()
    if renewed:
        organization.license_expires_on = license_expires_on
    await session.flush()
    await events.organization_verified(session, organization, actor_id)
    log.info(
        "organization_verified",
        org_id=str(organization.id),
        actor_id=str(actor_id),
        license_expires_on=str(organization.license_expires_on),
    )
    return organization
