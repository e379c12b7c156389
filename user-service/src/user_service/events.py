"""Events user-service publishes (through its outbox, in the caller's transaction).

The `data` of each event is its contract with consumers: add fields, never
rename or remove them. No secret (password, hash, token) ever goes in.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.events.outbox import add_event
from user_service.models import Organization, User, outbox

PRODUCER = "user-service"
USER_REGISTERED = "user.registered"
ORGANIZATION_VERIFIED = "organization.verified"
ORGANIZATION_SUSPENDED = "organization.suspended"
ORGANIZATION_REINSTATED = "organization.reinstated"
ORGANIZATION_LICENSE_EXPIRING = "organization.license_expiring"


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


def _actor(actor_id: uuid.UUID | None) -> str | None:
    # None: Flow itself acted (the licence job).
    return str(actor_id) if actor_id is not None else None


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def _organization_event(
    session: AsyncSession, event_type: str, organization: Organization, **data: object
) -> None:
    """An organization.* event: who it is about, then what happened to it."""
    await add_event(
        session,
        outbox,
        event_type=event_type,
        producer=PRODUCER,
        data={
            "org_id": str(organization.id),
            "name": organization.name,
            "kind": organization.kind,
            **data,
        },
    )


async def organization_verified(
    session: AsyncSession, organization: Organization, actor_id: uuid.UUID
) -> None:
    """Also sent again when a verified organisation's licence is renewed (a new date)."""
    await _organization_event(
        session,
        ORGANIZATION_VERIFIED,
        organization,
        actor_id=str(actor_id),
        verified_at=_iso(organization.verified_at),
        license_expires_on=_iso(organization.license_expires_on),
    )


async def organization_suspended(
    session: AsyncSession,
    organization: Organization,
    actor_id: uuid.UUID | None,
    reason: str | None,
) -> None:
    """`reason` is "license_expired" (and actor_id null) when the licence job suspends."""
    await _organization_event(
        session,
        ORGANIZATION_SUSPENDED,
        organization,
        actor_id=_actor(actor_id),
        reason=reason,
        suspended_at=_iso(organization.suspended_at),
    )


async def organization_reinstated(
    session: AsyncSession, organization: Organization, actor_id: uuid.UUID
) -> None:
    await _organization_event(
        session,
        ORGANIZATION_REINSTATED,
        organization,
        actor_id=str(actor_id),
        # Whether it is verified: a reinstated unverified vendor is still not listed.
        verified=organization.verified,
        license_expires_on=_iso(organization.license_expires_on),
    )


async def organization_license_expiring(
    session: AsyncSession, organization: Organization, *, days_left: int
) -> None:
    """Heard by the organisation's org admins (notification-service)."""
    await _organization_event(
        session,
        ORGANIZATION_LICENSE_EXPIRING,
        organization,
        license_expires_on=_iso(organization.license_expires_on),
        days_left=days_left,
    )
