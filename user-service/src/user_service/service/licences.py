"""The licence job: suspend organisations whose licence has expired, and warn their org
admins 30 and 7 days before (organization.license_expiring).

One pass (`run_license_pass`) is safe to run on several processes at once and again
after a restart: organisations are claimed with `FOR UPDATE SKIP LOCKED`, each warning
is a row unique per (org, licence date, threshold) inserted with ON CONFLICT DO NOTHING
(only the inserting pass emits the event, in the same transaction), and a suspension is
the admin's own idempotent path. A renewed licence has a new date, so its warnings start
afresh. The pass takes `now` from its caller: tests move the clock, nothing sleeps.

A licence valid through day D has expired on D + 1 (UTC dates).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import structlog
from redis.asyncio import Redis
from sqlalchemy import and_, exists, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.db import Database
from flow_shared.lifecycle import run_in_batches
from flow_shared.metrics import business_counter
from user_service import events
from user_service.config import Settings
from user_service.models import LICENSE_WARNING_DAYS, LicenseWarning, Organization
from user_service.service.organizations import MANAGED_KINDS
from user_service.service.suspension import LICENSE_EXPIRED, suspend_locked_organization

log = structlog.get_logger("user_service.licences")

LICENSE_WARNINGS = business_counter(
    "flow_user_license_warnings_total",
    "Licence-expiry warnings sent, by days before expiry.",
    ("days_before",),
)
LICENSE_SUSPENSIONS = business_counter(
    "flow_user_license_suspensions_total",
    "Organisations suspended by the licence job because their licence expired.",
)


@dataclass(frozen=True)
class LicensePassResult:
    warned: int
    suspended: int


def warning_window(days_before: int) -> tuple[int, int]:
    """The days left (inclusive) in which the `days_before` warning is due: from the
    threshold down to the next one (a licence first seen 5 days out gets only the 7-day
    warning, not a late 30-day one)."""
    thresholds = sorted(LICENSE_WARNING_DAYS)
    lower = max((t + 1 for t in thresholds if t < days_before), default=0)
    return lower, days_before


async def warn_expiring(
    session: AsyncSession, *, today: date, now: datetime, days_before: int, batch_size: int
) -> int:
    """Send up to `batch_size` due `days_before` warnings; returns how many were due."""
    due = await _due_for_warning(
        session, today=today, days_before=days_before, batch_size=batch_size
    )
    for organization in due:
        await _warn(session, organization, today=today, now=now, days_before=days_before)
    return len(due)


async def _due_for_warning(
    session: AsyncSession, *, today: date, days_before: int, batch_size: int
) -> Sequence[Organization]:
    """Unsuspended organisations in the `days_before` window not yet warned for this
    licence date, claimed (locked, skipping those another pass holds)."""
    lower, upper = warning_window(days_before)
    already_warned = exists().where(
        LicenseWarning.org_id == Organization.id,
        LicenseWarning.license_expires_on == Organization.license_expires_on,
        LicenseWarning.days_before == days_before,
    )
    return (
        await session.scalars(
            select(Organization)
            .where(
                Organization.license_expires_on.is_not(None),
                and_(
                    Organization.license_expires_on >= today + timedelta(days=lower),
                    Organization.license_expires_on <= today + timedelta(days=upper),
                ),
                Organization.suspended.is_(False),
                ~already_warned,
            )
            .order_by(Organization.license_expires_on, Organization.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
    ).all()


async def _warn(
    session: AsyncSession,
    organization: Organization,
    *,
    today: date,
    now: datetime,
    days_before: int,
) -> None:
    """Record this warning and emit organization.license_expiring, unless a concurrent
    pass recorded it first."""
    expires = organization.license_expires_on
    assert expires is not None
    # The constraint decides: a pass that loses the race inserts nothing, emits nothing.
    inserted = await session.scalar(
        pg_insert(LicenseWarning)
        .values(
            id=uuid.uuid4(),
            org_id=organization.id,
            license_expires_on=expires,
            days_before=days_before,
            sent_at=now,
        )
        .on_conflict_do_nothing(
            index_elements=[
                LicenseWarning.org_id,
                LicenseWarning.license_expires_on,
                LicenseWarning.days_before,
            ]
        )
        .returning(LicenseWarning.id)
    )
    if inserted is None:
        return
    days_left = (expires - today).days
    await events.organization_license_expiring(session, organization, days_left=days_left)
    LICENSE_WARNINGS.labels(str(days_before)).inc()
    log.info(
        "license_expiring",
        org_id=str(organization.id),
        days_left=days_left,
        license_expires_on=expires.isoformat(),
    )


async def suspend_expired(
    session: AsyncSession,
    *,
    redis: Redis,
    settings: Settings,
    today: date,
    now: datetime,
    batch_size: int,
) -> int:
    """Suspend up to `batch_size` organisations whose licence expired before `today`,
    through the admin's suspension path (`reason: "license_expired"`)."""
    expired = (
        await session.scalars(
            select(Organization)
            .where(
                Organization.kind.in_(MANAGED_KINDS),
                Organization.license_expires_on < today,
                Organization.suspended.is_(False),
            )
            .order_by(Organization.license_expires_on, Organization.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for organization in expired:
        await suspend_locked_organization(
            session,
            organization,
            redis=redis,
            settings=settings,
            actor_id=None,
            reason=LICENSE_EXPIRED,
            now=now,
        )
        LICENSE_SUSPENSIONS.inc()
    return len(expired)


async def run_license_pass(
    database: Database, redis: Redis, settings: Settings, *, now: datetime
) -> LicensePassResult:
    """One pass of the licence job at `now`: expired licences first (an organisation
    suspended now is warned no more), then each warning threshold."""
    today = now.date()
    batch_size = settings.license_check_batch_size

    async def suspend_batch(session: AsyncSession) -> int:
        return await suspend_expired(
            session, redis=redis, settings=settings, today=today, now=now, batch_size=batch_size
        )

    suspended = await run_in_batches(database, suspend_batch, batch_size=batch_size)
    warned = 0
    for days_before in sorted(LICENSE_WARNING_DAYS, reverse=True):

        async def warn_batch(session: AsyncSession, days_before: int = days_before) -> int:
            return await warn_expiring(
                session, today=today, now=now, days_before=days_before, batch_size=batch_size
            )

        warned += await run_in_batches(database, warn_batch, batch_size=batch_size)
    if suspended or warned:
        log.info("license_pass", suspended=suspended, warned=warned, today=today.isoformat())
    return LicensePassResult(warned=warned, suspended=suspended)
