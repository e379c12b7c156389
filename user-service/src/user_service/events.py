"""Events user-service publishes (through its outbox, in the caller's transaction).

The `data` of each event is its contract with consumers: add fields, never
rename or remove them. No secret (password, hash, token) ever goes in.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.events.outbox import add_event
from user_service.models import Organization, User, outbox

PRODUCER = "user-service"
USER_REGISTERED = "user.registered"
ORGANIZATION_VERIFIED = "organization.verified"
ORGANIZATION_SUSPENDED = "organization.suspended"


async def user_registered(
    session: AsyncSession,
    user: User,
    organization: Organization,
    *,
    added_by: uuid.UUID | None = None,
) -> None:
    """A new account: a self-registration (with its new organisation), a member added by
    an org_admin (`added_by` set) or the bootstrap platform admin."""
    await add_event(
        session,
        outbox,
        event_type=USER_REGISTERED,
        producer=PRODUCER,
        data={
            "user_id": str(user.id),
            "email": user.email,
            "full_name": user.full_name,
            "role": user.role,
            "org_id": str(organization.id),
            "org_kind": organization.kind,
            "org_name": organization.name,
            "org_verified": organization.verified,
            "added_by": str(added_by) if added_by else None,
        },
    )


async def organization_verified(
    session: AsyncSession, organization: Organization, actor_id: uuid.UUID
) -> None:
    await add_event(
        session,
        outbox,
        event_type=ORGANIZATION_VERIFIED,
        producer=PRODUCER,
        data={
            "org_id": str(organization.id),
            "name": organization.name,
            "kind": organization.kind,
            "actor_id": str(actor_id),
            "verified_at": organization.verified_at.isoformat()
            if organization.verified_at
            else None,
        },
    )


async def organization_suspended(
    session: AsyncSession, organization: Organization, actor_id: uuid.UUID, reason: str | None
) -> None:
    await add_event(
        session,
        outbox,
        event_type=ORGANIZATION_SUSPENDED,
        producer=PRODUCER,
        data={
            "org_id": str(organization.id),
            "name": organization.name,
            "kind": organization.kind,
            "actor_id": str(actor_id),
            "reason": reason,
            "suspended_at": organization.suspended_at.isoformat()
            if organization.suspended_at
            else None,
        },
    )
