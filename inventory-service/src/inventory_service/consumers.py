"""Events inventory-service consumes: organization.* into the verified-vendor
projection behind "nearby", and order.* into the supply projection (the orders bound for
hospital sites: their inbound, and the gas a delivery adds; service/supply.py). An
order that ends undelivered also gives its cylinders in transit back to their depot
(service/cylinders.py).
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict
from sqlalchemy import and_, case, func, or_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.clock import Clock, utcnow
from flow_shared.events.consumer import EventHandlers
from flow_shared.events.envelope import EventEnvelope
from inventory_service.models import SupplyOrderStatus, Vendor
from inventory_service.service import auto_reorder, cylinders, supply

ORGANIZATION_VERIFIED = "organization.verified"
ORGANIZATION_SUSPENDED = "organization.suspended"
ORGANIZATION_REINSTATED = "organization.reinstated"
# Every status of an order bound for a site: open ones are its inbound, a delivery adds
# its gas, and each end takes it off the inbound.
ORDER_EVENTS = frozenset(f"order.{status.value}" for status in SupplyOrderStatus)
# An SOS that ends without an order closes the auto-reorder that opened it.
SOS_ENDS = frozenset({"sos.unfilled", "sos.cancelled"})
# The ends of an order that was never delivered: its cylinders in transit go home.
UNDELIVERED_ENDS = frozenset(
    {
        SupplyOrderStatus.CANCELLED,
        SupplyOrderStatus.REJECTED,
        SupplyOrderStatus.EXPIRED,
        SupplyOrderStatus.FAILED,
    }
)


class SosEnded(BaseModel):
    model_config = ConfigDict(extra="ignore")

    sos_id: uuid.UUID


class OrganizationEvent(BaseModel):
    """The fields of user-service's organization.* data that the projection needs."""

    model_config = ConfigDict(extra="ignore")

    org_id: uuid.UUID
    name: str
    kind: str


async def _project_vendor(
    session: AsyncSession,
    envelope: EventEnvelope,
    *,
    verified: bool,
    suspended: bool | None,
) -> None:
    """`suspended` None: the event says nothing about suspension. Hospitals (and any
    other kind) are not vendors: ignored."""
    data = OrganizationEvent.model_validate(envelope.data)
    if data.kind != "vendor":
        return
    at = envelope.occurred_at
    row = pg_insert(Vendor).values(
        vendor_id=data.org_id,
        name=data.name[:200],
        verified=verified,
        suspended=bool(suspended),
        verified_at=at if verified else None,
        suspended_at=at if suspended is not None else None,
        updated_at=at,
    )
    current, new = Vendor.__table__.c, row.excluded
    newer = new.updated_at >= current.updated_at
    # `verified` only ever turns on upstream: OR-ing converges whatever the delivery order.
    # `suspended` turns off again on a reinstatement: the latest suspension or
    # reinstatement (by suspended_at, when it happened) decides.
    latest_suspension_news = and_(
        new.suspended_at.is_not(None),
        or_(current.suspended_at.is_(None), new.suspended_at >= current.suspended_at),
    )
    await session.execute(
        row.on_conflict_do_update(
            index_elements=[current.vendor_id],
            set_={
                "verified": current.verified | new.verified,
                "suspended": case((latest_suspension_news, new.suspended), else_=current.suspended),
                "verified_at": func.coalesce(current.verified_at, new.verified_at),
                # GREATEST skips NULLs: the time of the latest suspension or reinstatement.
                "suspended_at": func.greatest(current.suspended_at, new.suspended_at),
                "name": case((newer, new.name), else_=current.name),
                "updated_at": func.greatest(current.updated_at, new.updated_at),
            },
        )
    )


async def on_organization_verified(session: AsyncSession, envelope: EventEnvelope) -> None:
    """A verified vendor's depots appear in the catalogue and can take reservations."""
    await _project_vendor(session, envelope, verified=True, suspended=None)


async def on_organization_suspended(session: AsyncSession, envelope: EventEnvelope) -> None:
    """A suspended vendor disappears from the catalogue and cannot take reservations."""
    await _project_vendor(session, envelope, verified=False, suspended=True)


async def on_organization_reinstated(session: AsyncSession, envelope: EventEnvelope) -> None:
    """A reinstated vendor is back in the catalogue if it is verified."""
    await _project_vendor(session, envelope, verified=False, suspended=False)


def vendor_handlers() -> EventHandlers:
    """The verified-vendor projection's changes (each one changes the catalogue)."""
    return EventHandlers(
        {
            ORGANIZATION_VERIFIED: on_organization_verified,
            ORGANIZATION_SUSPENDED: on_organization_suspended,
            ORGANIZATION_REINSTATED: on_organization_reinstated,
        }
    )


def supply_handlers(clock: Clock) -> EventHandlers:
    """Every order.* event into the supply projection; levels are evaluated at `clock()`
    (a test's own clock moves time)."""

    async def on_order_event(session: AsyncSession, envelope: EventEnvelope) -> None:
        data = supply.OrderEventData.model_validate(envelope.data)
        now = clock()
        await supply.project_order_event(session, data, occurred_at=envelope.occurred_at, now=now)
        if data.status in UNDELIVERED_ENDS:
            await cylinders.order_ended(session, data.order_id, now=now)

    async def on_sos_ended(session: AsyncSession, envelope: EventEnvelope) -> None:
        data = SosEnded.model_validate(envelope.data)
        await auto_reorder.sos_ended(session, data.sos_id, now=clock())

    return EventHandlers(
        dict.fromkeys(ORDER_EVENTS, on_order_event), dict.fromkeys(SOS_ENDS, on_sos_ended)
    )


def event_handlers(clock: Clock = utcnow) -> EventHandlers:
    """All inventory-service consumes."""
    return EventHandlers(vendor_handlers(), supply_handlers(clock))
