"""Events inventory-service publishes (through its outbox, in the caller's transaction)
and the ones it consumes into the vendor projection.

Published `data` is a contract with consumers: add fields, never rename or remove.
- inventory.stock_changed {depot_id, vendor_id, product_id, sku, on_hand, reserved, available,
  low_stock_threshold, reason, delta, reference, note, actor}
  (reason is the movement kind: set, adjust, reserve, release, commit, expire)
- inventory.low_stock {depot_id, vendor_id, product_id, sku, available, low_stock_threshold}
- inventory.reservation_expired {reservation_id, order_id, depot_id, vendor_id, items}
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import and_, case, func, or_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.events.consumer import EventHandlers
from flow_shared.events.envelope import EventEnvelope
from flow_shared.events.outbox import add_event
from inventory_service.models import Vendor, outbox

PRODUCER = "inventory-service"
STOCK_CHANGED = "inventory.stock_changed"
LOW_STOCK = "inventory.low_stock"
RESERVATION_EXPIRED = "inventory.reservation_expired"
ORGANIZATION_VERIFIED = "organization.verified"
ORGANIZATION_SUSPENDED = "organization.suspended"
ORGANIZATION_REINSTATED = "organization.reinstated"


@dataclass(frozen=True, slots=True)
class StockSnapshot:
    """A stock row right after a change, as events describe it."""

    depot_id: uuid.UUID
    vendor_id: uuid.UUID
    product_id: uuid.UUID
    sku: str
    on_hand: int
    reserved: int
    low_stock_threshold: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


async def stock_changed(
    session: AsyncSession,
    stock: StockSnapshot,
    *,
    kind: str,
    delta: int,
    reference: str | None,
    note: str | None,
    actor: str,
) -> None:
    await add_event(
        session,
        outbox,
        event_type=STOCK_CHANGED,
        producer=PRODUCER,
        data={
            **_stock_data(stock),
            "on_hand": stock.on_hand,
            "reserved": stock.reserved,
            "reason": kind,
            "delta": delta,
            "reference": reference,
            "note": note,
            "actor": actor,
        },
    )


async def low_stock(session: AsyncSession, stock: StockSnapshot) -> None:
    await add_event(
        session,
        outbox,
        event_type=LOW_STOCK,
        producer=PRODUCER,
        data=_stock_data(stock),
    )


def _stock_data(stock: StockSnapshot) -> dict[str, Any]:
    """What both stock events say of the stock row: which one, and how much is free."""
    return {
        "depot_id": str(stock.depot_id),
        "vendor_id": str(stock.vendor_id),
        "product_id": str(stock.product_id),
        "sku": stock.sku,
        "available": stock.available,
        "low_stock_threshold": stock.low_stock_threshold,
    }


async def reservation_expired(
    session: AsyncSession,
    *,
    reservation_id: uuid.UUID,
    order_id: uuid.UUID,
    depot_id: uuid.UUID,
    vendor_id: uuid.UUID,
    items: list[dict[str, Any]],
) -> None:
    await add_event(
        session,
        outbox,
        event_type=RESERVATION_EXPIRED,
        producer=PRODUCER,
        data={
            "reservation_id": str(reservation_id),
            "order_id": str(order_id),
            "depot_id": str(depot_id),
            "vendor_id": str(vendor_id),
            "items": items,
        },
    )


# --- consumed -------------------------------------------------------------------------


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


def event_handlers() -> EventHandlers:
    """What inventory-service consumes: the verified-vendor projection's changes."""
    return EventHandlers(
        {
            ORGANIZATION_VERIFIED: on_organization_verified,
            ORGANIZATION_SUSPENDED: on_organization_suspended,
            ORGANIZATION_REINSTATED: on_organization_reinstated,
        }
    )
