"""Suspending and reinstating hospitals and vendors (a platform admin, or the licence
job), and the Redis marks through which every service refuses a suspended
organisation's tokens. The database is the truth; the marks are restored from it at
start-up.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.auth import suspended_org_key
from flow_shared.clock import utcnow
from flow_shared.errors import ServiceUnavailable
from user_service import events, sessions
from user_service.config import Settings
from user_service.errors import LicenseExpired
from user_service.models import Organization, User
from user_service.service.organizations import organization_for_update

# The suspension reason the licence job gives.
LICENSE_EXPIRED = "license_expired"

log = structlog.get_logger("user_service")


async def suspend_organization(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    redis: Redis,
    settings: Settings,
    actor_id: uuid.UUID | None,
    reason: str | None,
    kind: str | None = None,
    now: datetime | None = None,
) -> Organization:
    """Suspended users cannot log in or refresh, and every service rejects their
    existing access tokens through the Redis mark. Idempotent. `actor_id` None: the
    licence job."""
    organization = await organization_for_update(session, org_id, kind)
    return await suspend_locked_organization(
        session,
        organization,
        redis=redis,
        settings=settings,
        actor_id=actor_id,
        reason=reason,
        now=now,
    )


async def suspend_locked_organization(
    session: AsyncSession,
    organization: Organization,
    *,
    redis: Redis,
    settings: Settings,
    actor_id: uuid.UUID | None,
    reason: str | None,
    now: datetime | None = None,
) -> Organization:
    """Suspend a locked organisation (the admin's and the licence job's one path)."""
    # Marked before the commit: if the commit then fails, the org is blocked a little
    # early (and the admin retries) rather than left able to act.
    await mark_suspended(redis, settings, [organization.id])
    if not organization.suspended:
        now = now or utcnow()
        organization.suspended = True
        organization.suspended_at = now
        organization.suspension_reason = reason
        # The suspended-org mark refuses their tokens only while the org stays suspended;
        # the epoch makes sure a later reinstatement does not bring them back.
        member_ids = (
            await session.scalars(select(User.id).where(User.org_id == organization.id))
        ).all()
        await sessions.end_sessions(session, redis, settings, member_ids, now=utcnow())
        await session.flush()
        await events.organization_suspended(session, organization, actor_id, reason)
        log.info(
            "organization_suspended",
            org_id=str(organization.id),
            actor_id=str(actor_id),
            reason=reason,
        )
    return organization


async def reinstate_organization(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    redis: Redis,
    settings: Settings,
    actor_id: uuid.UUID,
    today: date | None = None,
) -> Organization:
    """Lift a suspension: the org's users may log in again (sessions ended by the
    suspension stay ended). Idempotent. An expired licence must be renewed first."""
    organization = await organization_for_update(session, org_id, None)
    if not organization.suspended:
        return organization
    expires = organization.license_expires_on
    if expires is not None and expires < (today or utcnow().date()):
        raise LicenseExpired()
    organization.suspended = False
    organization.suspended_at = None
    organization.suspension_reason = None
    await session.flush()
    await events.organization_reinstated(session, organization, actor_id)
    # Cleared before the commit: should the commit fail, login still reads the database
    # (still suspended), and the next start-up restores the mark.
    await clear_suspended(redis, settings, organization.id)
    log.info("organization_reinstated", org_id=str(organization.id), actor_id=str(actor_id))
    return organization


async def clear_suspended(redis: Redis, settings: Settings, org_id: uuid.UUID) -> None:
    try:
        await redis.delete(suspended_org_key(settings.redis_key_prefix, org_id))
    except RedisError as exc:
        raise ServiceUnavailable("The reinstatement cannot be recorded right now.") from exc


async def mark_suspended(redis: Redis, settings: Settings, org_ids: Sequence[uuid.UUID]) -> None:
    if not org_ids:
        return
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for org_id in org_ids:
                pipe.set(suspended_org_key(settings.redis_key_prefix, org_id), "1")
            await pipe.execute()
    except RedisError as exc:
        raise ServiceUnavailable("The suspension cannot be recorded right now.") from exc


async def restore_suspension_marks(session: AsyncSession, redis: Redis, settings: Settings) -> int:
    """The database is the truth; Redis may have lost its marks (restart without persistence)."""
    org_ids = (await session.scalars(select(Organization.id).where(Organization.suspended))).all()
    await mark_suspended(redis, settings, org_ids)
    return len(org_ids)
