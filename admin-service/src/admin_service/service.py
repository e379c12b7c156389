"""What platform admins do and see: actions on hospitals and vendors (audited here,
carried out by user-service), stats and audit from the event projection, and the
readiness of every service."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Numeric, SQLColumnExpression, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from admin_service.clients import FleetHealthClient, UserServiceClient
from admin_service.events import OPEN_ORDER_STATUSES, ORDER_STATUSES
from admin_service.models import (
    AdminAction,
    AdminActionKind,
    AuditEvent,
    OrderFact,
    OrgFact,
    Shortage,
    SosFact,
)
from admin_service.schemas import (
    AuditEventOut,
    AuditPage,
    FleetHealth,
    Organization,
    OrganizationPage,
    PlatformStats,
    ServiceHealth,
    ServiceStatus,
    VendorOrganization,
    VendorPage,
)
from flow_shared.auth import Principal
from flow_shared.correlation import get_correlation_id
from flow_shared.health import HealthRegistry
from flow_shared.pagination import PageParams, fetch_page


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


async def list_organizations(
    users: UserServiceClient,
    *,
    kind: str | None,
    verified: bool | None,
    suspended: bool | None,
    params: PageParams,
) -> OrganizationPage:
    return await users.list_organizations(
        kind=kind, verified=verified, suspended=suspended, params=params
    )


async def verify_organization(
    session: AsyncSession,
    users: UserServiceClient,
    admin: Principal,
    org_id: uuid.UUID,
    *,
    license_expires_on: date,
) -> Organization:
    """Verify a hospital or vendor, or renew its licence (a new expiry date)."""
    await _record_action(
        session,
        admin,
        AdminActionKind.VERIFY,
        org_id,
        reason=f"license_expires_on={license_expires_on.isoformat()}",
    )
    return await users.verify_organization(
        org_id, actor_id=admin.user_id, license_expires_on=license_expires_on
    )


async def suspend_organization(
    session: AsyncSession,
    users: UserServiceClient,
    admin: Principal,
    org_id: uuid.UUID,
    *,
    reason: str,
) -> Organization:
    await _record_action(session, admin, AdminActionKind.SUSPEND, org_id, reason=reason)
    return await users.suspend_organization(org_id, actor_id=admin.user_id, reason=reason)


async def reinstate_organization(
    session: AsyncSession, users: UserServiceClient, admin: Principal, org_id: uuid.UUID
) -> Organization:
    await _record_action(session, admin, AdminActionKind.REINSTATE, org_id, reason=None)
    return await users.reinstate_organization(org_id, actor_id=admin.user_id)


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


# --- stats, audit and health ----------------------------------------------------------


async def platform_stats(session: AsyncSession, *, now: datetime) -> PlatformStats:
    """SPEC's admin stats, each figure one SQL aggregate over the projection."""
    midnight = datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)
    by_status: dict[str, int] = dict.fromkeys(ORDER_STATUSES, 0)
    for status, count in await session.execute(
        select(OrderFact.status, func.count()).group_by(OrderFact.status)
    ):
        by_status[status] = count

    orders = (
        await session.execute(
            select(
                func.count().filter(
                    OrderFact.placed_at >= midnight,
                    OrderFact.placed_at < midnight + timedelta(days=1),
                ),
                _average_minutes(OrderFact.placed_at, OrderFact.confirmed_at),
                _average_minutes(OrderFact.placed_at, OrderFact.delivered_at),
                func.count().filter(
                    OrderFact.priority == "emergency", OrderFact.status.in_(OPEN_ORDER_STATUSES)
                ),
            )
        )
    ).one()
    orders_today, avg_confirm, avg_delivery, open_emergency = orders

    delivered_totals = await session.execute(
        select(OrderFact.currency, func.sum(OrderFact.total))
        .where(OrderFact.status == "delivered")
        .group_by(OrderFact.currency)
        .order_by(OrderFact.currency)
    )
    gmv: dict[str, Decimal] = dict(delivered_totals.all())

    active = OrgFact.verified.is_(True) & OrgFact.suspended.is_(False)
    active_vendors, active_hospitals = (
        await session.execute(
            select(
                func.count().filter(OrgFact.kind == "vendor", active),
                func.count().filter(OrgFact.kind == "hospital", active),
            )
        )
    ).one()

    # Ended by an admin or by the expiry job; one past its ends_at no longer counts.
    active_shortages = await session.scalar(
        select(func.count())
        .select_from(Shortage)
        .where(Shortage.ended_at.is_(None), or_(Shortage.ends_at.is_(None), Shortage.ends_at > now))
    )
    open_sos = await session.scalar(
        select(func.count()).select_from(SosFact).where(SosFact.status == "open")
    )

    return PlatformStats(
        orders_by_status=by_status,
        orders_today=orders_today,
        gmv=gmv,
        avg_confirm_minutes=_minutes(avg_confirm),
        avg_delivery_minutes=_minutes(avg_delivery),
        open_emergency_orders=open_emergency,
        active_vendors=active_vendors,
        active_hospitals=active_hospitals,
        active_shortages=active_shortages or 0,
        open_sos=open_sos or 0,
    )


def _average_minutes(
    start: SQLColumnExpression[datetime | None], end: SQLColumnExpression[datetime | None]
) -> ColumnElement[Any]:
    # Orders missing either time give NULL, which AVG skips; NULL when none has both.
    seconds = func.avg(func.extract("epoch", end - start))
    return func.round(cast(seconds / 60, Numeric), 1)


def _minutes(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


async def audit_events(
    session: AsyncSession, *, event_type: str | None, params: PageParams
) -> AuditPage:
    """Every event seen, newest first; `event_type` filters by exact type."""
    statement = select(AuditEvent)
    if event_type is not None:
        statement = statement.where(AuditEvent.type == event_type)
    rows, total = await fetch_page(
        session,
        statement.order_by(AuditEvent.occurred_at.desc(), AuditEvent.event_id.desc()),
        params,
    )
    items = [
        AuditEventOut(
            id=row.event_id,
            type=row.type,
            producer=row.producer,
            occurred_at=row.occurred_at,
            correlation_id=row.correlation_id,
            data=row.data,
        )
        for row in rows
    ]
    return AuditPage.of(items, params, total)


OWN_NAME = "admin-service"


async def fleet_health(client: FleetHealthClient, own_checks: HealthRegistry) -> FleetHealth:
    """Every service's readiness, asked concurrently; degraded unless all are ok.

    admin-service runs its own readiness checks in-process (the same ones its
    /health/ready runs): it is the one answering, so a request to itself would only add
    a hop and a URL to configure."""

    async def one(url: str | None) -> ServiceHealth:
        if url is None:
            return ServiceHealth(status="not configured")
        return await client.readiness(url)

    async def own() -> ServiceHealth:
        checks = await own_checks.run()
        status: ServiceStatus = "failing" if own_checks.failing(checks) else "ok"
        return ServiceHealth(status=status, checks=checks)

    names = [*client.urls, OWN_NAME]
    results = await asyncio.gather(*(one(client.urls[name]) for name in client.urls), own())
    services = dict(zip(names, results, strict=True))
    healthy = all(health.status == "ok" for health in services.values())
    return FleetHealth(status="ok" if healthy else "degraded", services=services)
