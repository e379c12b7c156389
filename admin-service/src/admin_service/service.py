"""Admin actions on vendor organisations: audited here, carried out by user-service."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from admin_service.clients import UserServiceClient
from admin_service.models import AdminAction, AdminActionKind
from admin_service.schemas import VendorOrganization, VendorPage
from flow_shared.auth import Principal
from flow_shared.correlation import get_correlation_id
from flow_shared.pagination import PageParams


async def list_vendors(
    users: UserServiceClient, *, verified: bool | None, params: PageParams
) -> VendorPage:
    return await users.list_vendors(verified=verified, params=params)


async def verify_vendor(
    session: AsyncSession, users: UserServiceClient, admin: Principal, org_id: uuid.UUID
) -> VendorOrganization:
    await _record_action(session, admin, AdminActionKind.VERIFY, org_id, reason=None)
    return await users.verify_vendor(org_id, actor_id=admin.user_id)


async def suspend_vendor(
    session: AsyncSession,
    users: UserServiceClient,
    admin: Principal,
    org_id: uuid.UUID,
    *,
    reason: str | None,
) -> VendorOrganization:
    await _record_action(session, admin, AdminActionKind.SUSPEND, org_id, reason=reason)
    return await users.suspend_vendor(org_id, actor_id=admin.user_id, reason=reason)


async def _record_action(
    session: AsyncSession,
    admin: Principal,
    action: AdminActionKind,
    org_id: uuid.UUID,
    *,
    reason: str | None,
) -> None:
    # Flushed before user-service is called: if our database cannot take the audit row,
    # the action is not carried out. If user-service then fails, the request's
    # transaction rolls back and no row claims an action that did not happen.
    session.add(
        AdminAction(
            actor_id=admin.user_id,
            action=action.value,
            org_id=org_id,
            reason=reason,
            correlation_id=get_correlation_id(),
        )
    )
    await session.flush()
