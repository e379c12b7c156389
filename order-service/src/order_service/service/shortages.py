"""Shortages (SPEC, shortage readiness): what an active shortage does to orders.

The projection of admin-service's `shortage.declared` / `shortage.ended` says where (a
circle) and for which product categories a shortage is on. For an order whose delivery
point lies inside one, for the category of any of its products:
- a routine order is refused (409 `.../shortage-routine-paused`); urgent and emergency go on;
- caps of those products are multiplied by SHORTAGE_CAP_FACTOR (allocation.caps_for);
- the hold of the unconfirmed order lasts at most SHORTAGE_HOLD_MINUTES (placement.place).

Products' categories come from inventory-service (`GET /internal/products?ids=`), asked
only when an active shortage covers the delivery point: on an ordinary day no order pays
for the lookup, and during a shortage the answer is always current.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.events.envelope import EventEnvelope
from flow_shared.metrics import business_counter
from order_service.clients import InventoryClient
from order_service.errors import ShortageRoutinePaused
from order_service.models import ShortageProjection

ROUTINE_PAUSED = business_counter(
    "flow_shortage_routine_refusals_total", "Routine orders refused inside a shortage.", ()
)

log = structlog.get_logger("order_service.shortages")


@dataclass(frozen=True, slots=True)
class ShortageScope:
    """The active shortages an order falls under, and which of its products they cover."""

    shortage_ids: Sequence[uuid.UUID] = ()
    categories: Sequence[str] = ()
    products: frozenset[uuid.UUID] = field(default_factory=frozenset)

    @property
    def applies(self) -> bool:
        return bool(self.products)


NO_SHORTAGE = ShortageScope()


async def active_at(
    session: AsyncSession, *, lat: float, lon: float, now: datetime
) -> list[ShortageProjection]:
    """Active shortages whose circle contains the point (sphere distance, as admin-service)."""
    covers = text(
        "ST_DWithin((ST_SetSRID(ST_MakePoint(shortages.lon, shortages.lat), 4326))::geography,"
        " (ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))::geography,"
        " shortages.radius_km * 1000.0, false)"
    ).bindparams(lon=lon, lat=lat)
    rows = await session.scalars(
        select(ShortageProjection).where(
            ShortageProjection.ended_at.is_(None),
            or_(ShortageProjection.starts_at.is_(None), ShortageProjection.starts_at <= now),
            or_(ShortageProjection.ends_at.is_(None), ShortageProjection.ends_at > now),
            covers,
        )
    )
    return list(rows)


async def scope_for(
    session: AsyncSession,
    inventory: InventoryClient,
    *,
    lat: float,
    lon: float,
    product_ids: Collection[uuid.UUID],
    now: datetime,
) -> ShortageScope:
    """Which of `product_ids` an active shortage covers at this delivery point."""
    shortages = await active_at(session, lat=lat, lon=lon, now=now)
    if not shortages:
        return NO_SHORTAGE
    categories_of = await inventory.product_categories(sorted(set(product_ids)))
    matched = [
        s for s in shortages if any(categories_of.get(p) in s.categories for p in product_ids)
    ]
    if not matched:
        return NO_SHORTAGE
    short_categories = {c for s in matched for c in s.categories}
    return ShortageScope(
        shortage_ids=sorted(s.shortage_id for s in matched),
        categories=sorted(short_categories & set(categories_of.values())),
        products=frozenset(p for p in product_ids if categories_of.get(p) in short_categories),
    )


def check_priority(scope: ShortageScope, priority: str) -> None:
    """A routine order inside a shortage for one of its categories is paused."""
    if not scope.applies or priority != "routine":
        return
    ROUTINE_PAUSED.inc()
    log.info(
        "shortage_routine_paused",
        shortage_ids=[str(s) for s in scope.shortage_ids],
        categories=list(scope.categories),
    )
    raise ShortageRoutinePaused(
        "Routine orders for "
        + ", ".join(scope.categories)
        + " are paused in this area while a shortage lasts; order as urgent or emergency.",
        extra={
            "shortage_ids": [str(s) for s in scope.shortage_ids],
            "shortage_id": str(scope.shortage_ids[0]),
            "categories": list(scope.categories),
        },
    )


def shortage_cap(base: int, factor: float) -> int:
    """A cap inside a shortage: floor(base * factor), but at least 1 when base is."""
    if base <= 0:
        return base
    return max(1, int(base * factor))


# --- the projection (shortage.declared / shortage.ended from admin-service) -------------


class _Area(BaseModel):
    model_config = ConfigDict(extra="ignore")

    lat: float
    lon: float
    radius_km: float


class ShortageEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    shortage_id: uuid.UUID
    area: _Area
    categories: list[str]
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    ended_at: datetime | None = None


async def _upsert(session: AsyncSession, envelope: EventEnvelope, *, ended: bool) -> None:
    data = ShortageEvent.model_validate(envelope.data)
    ended_at = (data.ended_at or envelope.occurred_at) if ended else None
    row = insert(ShortageProjection).values(
        shortage_id=data.shortage_id,
        lat=data.area.lat,
        lon=data.area.lon,
        radius_km=data.area.radius_km,
        categories=sorted(set(data.categories)),
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        ended_at=ended_at,
        updated_at=envelope.occurred_at,
    )
    current = ShortageProjection.__table__.c
    if ended:
        # An end is final; a redelivered one changes nothing.
        statement = row.on_conflict_do_update(
            index_elements=[current.shortage_id],
            set_={"ended_at": func.coalesce(current.ended_at, row.excluded.ended_at)},
        )
    else:
        # A declaration after its own end (reordered delivery) must not reopen it.
        statement = row.on_conflict_do_update(
            index_elements=[current.shortage_id],
            set_={
                "starts_at": row.excluded.starts_at,
                "ends_at": row.excluded.ends_at,
            },
        )
    await session.execute(statement)


async def on_shortage_declared(session: AsyncSession, envelope: EventEnvelope) -> None:
    await _upsert(session, envelope, ended=False)


async def on_shortage_ended(session: AsyncSession, envelope: EventEnvelope) -> None:
    await _upsert(session, envelope, ended=True)
