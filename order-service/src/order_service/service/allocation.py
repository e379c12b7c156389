"""Fair allocation: a hospital's open units per product are capped, and the database holds it.

Open units are the units of a hospital's orders not yet delivered, cancelled, rejected,
expired or failed (and, once SOS exists, of its open SOS requests: they take and give
back through the same two functions). They are counted in `allocation_usage`, one row per
(hospital, product):

- `take` runs in the transaction that creates the order, before any stock is reserved:
  one conditional `UPDATE ... SET open_units = open_units + n WHERE open_units + n <= cap`
  per product (ascending product id, one lock order for everyone). The row stays locked
  until that transaction ends, so concurrent orders of one hospital for one product queue
  there and each sees the last one's outcome; none can pass the cap, in any process. An
  order that fails later rolls back with its count: nothing to compensate.
- `give_back` runs in the transaction that moves the order to delivered or to an end
  state (state.apply_transition, under the order's row lock). An order enters such a
  state once, so its units come back once, whichever path ends it.

Caps come from one function, `caps_for`: an admin's override, else the default for a
verified or an unverified hospital, a verified one's raised to ALLOCATION_DAYS of its
reported use (the `site_consumption` projection of supply.reported, reports no older than
ALLOCATION_REPORT_MAX_AGE_HOURS); inside an active shortage for the product's category,
times SHORTAGE_CAP_FACTOR.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.clock import utcnow
from flow_shared.events.envelope import EventEnvelope
from flow_shared.metrics import business_counter
from flow_shared.validation import DB_INTEGER_MAX
from order_service.clients import Upstreams
from order_service.config import Settings
from order_service.errors import AllocationCapExceeded
from order_service.models import (
    AllocationCap,
    AllocationUsage,
    HospitalStanding,
    Order,
    SiteConsumption,
)
from order_service.schemas import AllocationItem, AllocationOut, CapOverride, CapSource
from order_service.service import shortages
from order_service.service.shortages import NO_SHORTAGE, ShortageScope, shortage_cap

ALLOCATION_REFUSALS = business_counter(
    "flow_allocation_refusals_total", "Orders refused for passing an allocation cap.", ()
)

log = structlog.get_logger("order_service.allocation")


@dataclass(frozen=True, slots=True)
class Cap:
    units: int
    source: CapSource


def units_by_product(lines: Iterable[tuple[uuid.UUID, int]]) -> dict[uuid.UUID, int]:
    """Lines of one product count together; ascending product id (the lock order)."""
    totals: dict[uuid.UUID, int] = defaultdict(int)
    for product_id, quantity in lines:
        totals[product_id] += quantity
    return dict(sorted(totals.items()))


def order_units(order: Order) -> dict[uuid.UUID, int]:
    return units_by_product((item.product_id, item.quantity) for item in order.items)


async def is_verified(session: AsyncSession, hospital_org_id: uuid.UUID) -> bool:
    standing = await session.get(HospitalStanding, hospital_org_id)
    return standing is not None and standing.verified and not standing.suspended


async def caps_for(
    session: AsyncSession,
    settings: Settings,
    hospital_org_id: uuid.UUID,
    product_ids: Sequence[uuid.UUID],
    *,
    shortage: ShortageScope = NO_SHORTAGE,
) -> dict[uuid.UUID, Cap]:
    """The cap of each product for this hospital: its override, else the default, for a
    verified hospital at least ALLOCATION_DAYS of what its sites reported they use; for the
    products an active shortage covers at the delivery point (`shortage`, from
    shortages.scope_for), that times SHORTAGE_CAP_FACTOR (floor, at least 1).

    The one place caps are computed."""
    rows = await session.execute(
        select(AllocationCap.product_id, AllocationCap.units).where(
            AllocationCap.hospital_org_id == hospital_org_id,
            AllocationCap.product_id.in_(list(product_ids)),
        )
    )
    overrides: dict[uuid.UUID, int] = {row[0]: row[1] for row in rows}
    verified = await is_verified(session, hospital_org_id)
    if verified:
        default = Cap(settings.allocation_cap_verified, "default_verified")
        floors = await _consumption_floors(session, settings, hospital_org_id, product_ids)
    else:
        default = Cap(settings.allocation_cap_unverified, "default_unverified")
        floors = {}
    caps: dict[uuid.UUID, Cap] = {}
    for product_id in product_ids:
        floor = floors.get(product_id, 0)
        if product_id in overrides:
            caps[product_id] = Cap(overrides[product_id], "override")
        elif floor > default.units:
            caps[product_id] = Cap(floor, "consumption")
        else:
            caps[product_id] = default
    for product_id in shortage.products & caps.keys():
        cap = caps[product_id]
        caps[product_id] = Cap(shortage_cap(cap.units, settings.shortage_cap_factor), cap.source)
    return caps


async def _consumption_floors(
    session: AsyncSession,
    settings: Settings,
    hospital_org_id: uuid.UUID,
    product_ids: Sequence[uuid.UUID],
) -> dict[uuid.UUID, int]:
    """ALLOCATION_DAYS of the units a day the hospital's sites reported they use, per
    product, rounded up; reports older than ALLOCATION_REPORT_MAX_AGE_HOURS do not count
    (a rate nobody has confirmed for that long is not evidence of need)."""
    cutoff = utcnow() - timedelta(hours=settings.allocation_report_max_age_hours)
    reports = await session.scalars(
        select(SiteConsumption.daily_units).where(
            SiteConsumption.hospital_org_id == hospital_org_id, SiteConsumption.as_of >= cutoff
        )
    )
    per_day: dict[uuid.UUID, float] = defaultdict(float)
    wanted = {str(product_id): product_id for product_id in product_ids}
    for daily_units in reports:
        for product, units in daily_units.items():
            if product in wanted:
                per_day[wanted[product]] += units
    return {
        product_id: min(math.ceil(settings.allocation_days * units), DB_INTEGER_MAX)
        for product_id, units in per_day.items()
    }


async def take(
    session: AsyncSession,
    settings: Settings,
    hospital_org_id: uuid.UUID,
    wanted: Mapping[uuid.UUID, int],
    *,
    shortage: ShortageScope = NO_SHORTAGE,
) -> None:
    """Count `wanted` as open for this hospital, or raise AllocationCapExceeded.

    In the caller's transaction, which must be the one that creates the order (or SOS).
    `shortage` (shortages.scope_for at the delivery point) tightens the caps it covers.
    """
    products = sorted(wanted)
    caps = await caps_for(session, settings, hospital_org_id, products, shortage=shortage)
    # The rows must exist for the conditional UPDATE to lock and test them.
    await session.execute(
        insert(AllocationUsage)
        .values([{"hospital_org_id": hospital_org_id, "product_id": p} for p in products])
        .on_conflict_do_nothing(index_elements=["hospital_org_id", "product_id"])
    )
    for product_id in products:
        requested, cap = wanted[product_id], caps[product_id].units
        taken = await session.scalar(
            update(AllocationUsage)
            .where(
                AllocationUsage.hospital_org_id == hospital_org_id,
                AllocationUsage.product_id == product_id,
                AllocationUsage.open_units + requested <= cap,
            )
            .values(open_units=AllocationUsage.open_units + requested, updated_at=utcnow())
            .returning(AllocationUsage.open_units)
            .execution_options(synchronize_session=False)
        )
        if taken is None:
            open_units = await session.scalar(
                select(AllocationUsage.open_units).where(
                    AllocationUsage.hospital_org_id == hospital_org_id,
                    AllocationUsage.product_id == product_id,
                )
            )
            ALLOCATION_REFUSALS.inc()
            log.info(
                "allocation_cap_exceeded",
                hospital_org_id=str(hospital_org_id),
                product_id=str(product_id),
                cap=cap,
                open=open_units,
                requested=requested,
            )
            raise AllocationCapExceeded(
                f"This order would take your open units of product {product_id} to "
                f"{(open_units or 0) + requested}, over your cap of {cap}.",
                extra={
                    "product_id": str(product_id),
                    "cap": cap,
                    "open": open_units or 0,
                    "requested": requested,
                },
            )


async def give_back(
    session: AsyncSession, hospital_org_id: uuid.UUID, units: Mapping[uuid.UUID, int]
) -> None:
    """No longer count `units` as open (the CHECK refuses to go below zero)."""
    for product_id in sorted(units):
        await session.execute(
            update(AllocationUsage)
            .where(
                AllocationUsage.hospital_org_id == hospital_org_id,
                AllocationUsage.product_id == product_id,
            )
            .values(open_units=AllocationUsage.open_units - units[product_id], updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )


async def allocation_of(
    session: AsyncSession,
    settings: Settings,
    hospital_org_id: uuid.UUID,
    *,
    site_id: uuid.UUID | None = None,
    shortage_at: Callable[[Sequence[uuid.UUID]], Awaitable[ShortageScope]] | None = None,
) -> AllocationOut:
    """Every product this hospital has an override for or units open in, with its cap; at a
    delivery point (`shortage_at` gives the shortage scope there) as a shortage tightens it."""
    rows = await session.execute(
        select(AllocationUsage.product_id, AllocationUsage.open_units).where(
            AllocationUsage.hospital_org_id == hospital_org_id,
            AllocationUsage.open_units > 0,
        )
    )
    open_units: dict[uuid.UUID, int] = {row[0]: row[1] for row in rows}
    overridden = (
        await session.scalars(
            select(AllocationCap.product_id).where(AllocationCap.hospital_org_id == hospital_org_id)
        )
    ).all()
    products = sorted(set(open_units) | set(overridden))
    shortage = await shortage_at(products) if shortage_at is not None and products else NO_SHORTAGE
    caps = await caps_for(session, settings, hospital_org_id, products, shortage=shortage)
    items = [
        AllocationItem(
            product_id=product_id,
            cap=caps[product_id].units,
            open_units=open_units.get(product_id, 0),
            source=caps[product_id].source,
        )
        for product_id in products
    ]
    return AllocationOut(items=items, site_id=site_id, shortage_ids=list(shortage.shortage_ids))


async def allocation_at_site(
    session: AsyncSession,
    settings: Settings,
    upstreams: Upstreams,
    hospital_org_id: uuid.UUID,
    site_id: uuid.UUID,
) -> AllocationOut:
    """The caps for deliveries at one of the hospital's sites (404 for another's)."""
    site = await upstreams.location.get_site(site_id, org_id=hospital_org_id)

    async def shortage_at(products: Sequence[uuid.UUID]) -> ShortageScope:
        return await shortages.scope_for(
            session,
            upstreams.inventory,
            lat=site.lat,
            lon=site.lon,
            product_ids=products,
            now=utcnow(),
        )

    return await allocation_of(
        session, settings, hospital_org_id, site_id=site.id, shortage_at=shortage_at
    )


async def set_caps(
    session: AsyncSession,
    settings: Settings,
    hospital_org_id: uuid.UUID,
    caps: Sequence[CapOverride],
    *,
    actor_id: uuid.UUID | None,
) -> list[AllocationItem]:
    """Store an admin's caps (units null removes one); answers the hospital's allocation.

    A cap below the units already open refuses new orders until enough of them end; it
    never touches orders already placed.
    """
    now = utcnow()
    for cap in sorted(caps, key=lambda c: c.product_id):
        key = {"hospital_org_id": hospital_org_id, "product_id": cap.product_id}
        if cap.units is None:
            await session.execute(
                delete(AllocationCap).where(
                    AllocationCap.hospital_org_id == hospital_org_id,
                    AllocationCap.product_id == cap.product_id,
                )
            )
            continue
        statement = insert(AllocationCap).values(
            **key, units=cap.units, updated_by=actor_id, updated_at=now
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["hospital_org_id", "product_id"],
                set_={"units": cap.units, "updated_by": actor_id, "updated_at": now},
            )
        )
    log.info(
        "allocation_caps_set",
        hospital_org_id=str(hospital_org_id),
        actor_id=str(actor_id) if actor_id else None,
        caps={str(c.product_id): c.units for c in caps},
    )
    return (await allocation_of(session, settings, hospital_org_id)).items


# --- the consumption projection (supply.reported) -----------------------------------------


class DailyUnits(BaseModel):
    model_config = ConfigDict(extra="ignore")

    product_id: uuid.UUID
    units_per_day: float = Field(ge=0)


class SupplyReported(BaseModel):
    """The fields of inventory-service's supply.reported that the floor needs."""

    model_config = ConfigDict(extra="ignore")

    site_id: uuid.UUID
    hospital_org_id: uuid.UUID
    as_of: datetime
    daily_units: list[DailyUnits]


async def on_supply_reported(session: AsyncSession, envelope: EventEnvelope) -> None:
    """A site's newest report replaces its older one (by the report's own time)."""
    data = SupplyReported.model_validate(envelope.data)
    row = insert(SiteConsumption).values(
        site_id=data.site_id,
        hospital_org_id=data.hospital_org_id,
        daily_units={str(line.product_id): line.units_per_day for line in data.daily_units},
        as_of=data.as_of,
    )
    current, new = SiteConsumption.__table__.c, row.excluded
    await session.execute(
        row.on_conflict_do_update(
            index_elements=[current.site_id],
            set_={
                "hospital_org_id": new.hospital_org_id,
                "daily_units": new.daily_units,
                "as_of": new.as_of,
            },
            where=new.as_of > current.as_of,
        )
    )


# --- the hospitals projection (organization.verified / .suspended / .reinstated) ----------


class OrganizationEvent(BaseModel):
    """The fields of user-service's organization.* data that the projection needs."""

    model_config = ConfigDict(extra="ignore")

    org_id: uuid.UUID
    kind: str
    # organization.reinstated says whether the organisation is verified.
    verified: bool = False


async def _project_hospital(
    session: AsyncSession,
    envelope: EventEnvelope,
    *,
    verified: bool,
    suspended: bool | None,
) -> None:
    """`suspended` None: the event says nothing about suspension."""
    data = OrganizationEvent.model_validate(envelope.data)
    if data.kind != "hospital":
        return
    at = envelope.occurred_at
    row = insert(HospitalStanding).values(
        org_id=data.org_id,
        verified=verified,
        suspended=bool(suspended),
        suspended_as_of=at if suspended is not None else None,
        updated_at=at,
    )
    current = HospitalStanding.__table__.c
    changes: dict[str, Any] = {
        "verified": current.verified | row.excluded.verified,
        "updated_at": func.greatest(current.updated_at, row.excluded.updated_at),
    }
    if suspended is not None:
        # The newest suspension or reinstatement wins, whatever order they arrive in.
        newer = or_(current.suspended_as_of.is_(None), current.suspended_as_of <= at)
        changes["suspended"] = case((newer, row.excluded.suspended), else_=current.suspended)
        changes["suspended_as_of"] = case((newer, at), else_=current.suspended_as_of)
    await session.execute(row.on_conflict_do_update(index_elements=[current.org_id], set_=changes))


async def on_organization_verified(session: AsyncSession, envelope: EventEnvelope) -> None:
    """A verified hospital gets the verified default caps."""
    await _project_hospital(session, envelope, verified=True, suspended=None)


async def on_organization_suspended(session: AsyncSession, envelope: EventEnvelope) -> None:
    """A suspended hospital falls back to the unverified default caps."""
    await _project_hospital(session, envelope, verified=False, suspended=True)


async def on_organization_reinstated(session: AsyncSession, envelope: EventEnvelope) -> None:
    """A reinstated hospital has the caps of its verification again."""
    verified = OrganizationEvent.model_validate(envelope.data).verified
    await _project_hospital(session, envelope, verified=verified, suspended=False)
