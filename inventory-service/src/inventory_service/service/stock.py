"""Depots and their stock: what vendors manage, and the one place a stock row's
change is recorded (movement, stock_changed, low_stock)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.pagination import PageParams, fetch_page
from flow_shared.validation import MAX_UNITS
from inventory_service import events
from inventory_service.errors import (
    DepotNotFound,
    ProductNotFound,
    StockAboveMaximum,
    StockBelowReserved,
)
from inventory_service.models import Depot, MovementKind, Product, Stock, StockMovement, Vendor
from inventory_service.schemas import DepotCreate, StockAdjust, StockSet

# What every stock-changing UPDATE returns.
STOCK_COLUMNS = (
    Stock.depot_id,
    Stock.product_id,
    Stock.on_hand,
    Stock.reserved,
    Stock.low_stock_threshold,
    Stock.low_stock_alerted,
    Stock.updated_at,
)


@dataclass(frozen=True, slots=True)
class StockState:
    """A stock row as a stock-changing statement RETURNs it."""

    depot_id: uuid.UUID
    product_id: uuid.UUID
    on_hand: int
    reserved: int
    low_stock_threshold: int
    low_stock_alerted: bool
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> StockState:
        return cls(*(getattr(row, column.key) for column in STOCK_COLUMNS))


@dataclass(frozen=True, slots=True)
class StockView:
    depot_id: uuid.UUID
    product_id: uuid.UUID
    sku: str
    product_name: str
    on_hand: int
    reserved: int
    low_stock_threshold: int
    updated_at: datetime

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


# --- depots ---------------------------------------------------------------------------


async def create_depot(session: AsyncSession, vendor_id: uuid.UUID, body: DepotCreate) -> Depot:
    """Vendors may set up depots before they are verified; they are listed once verified."""
    depot = Depot(
        vendor_id=vendor_id,
        name=body.name,
        address=body.address,
        lat=body.lat,
        lon=body.lon,
        service_radius_km=body.service_radius_km,
    )
    session.add(depot)
    await session.flush()
    await session.refresh(depot, ["created_at"])
    return depot


async def list_depots(
    session: AsyncSession, vendor_id: uuid.UUID, params: PageParams
) -> tuple[Sequence[Depot], int]:
    statement: Select[Any] = (
        select(Depot).where(Depot.vendor_id == vendor_id).order_by(Depot.created_at, Depot.id)
    )
    return await fetch_page(session, statement, params)


async def vendor_depot(session: AsyncSession, vendor_id: uuid.UUID, depot_id: uuid.UUID) -> Depot:
    """The vendor's own depot; another vendor's is 404, never 403."""
    depot = await session.scalar(
        select(Depot).where(Depot.id == depot_id, Depot.vendor_id == vendor_id)
    )
    if depot is None:
        raise DepotNotFound()
    return depot


async def depot_summary(session: AsyncSession, depot_id: uuid.UUID) -> dict[str, Any]:
    """A depot with its vendor's projection, for other services (pricing, orders)."""
    row = (
        await session.execute(
            select(
                Depot.id.label("depot_id"),
                Depot.vendor_id,
                Vendor.name.label("vendor_name"),
                Depot.name,
                Depot.lat,
                Depot.lon,
                Depot.service_radius_km,
                func.coalesce(Vendor.verified & ~Vendor.suspended, False).label("vendor_active"),
            )
            .outerjoin(Vendor, Vendor.vendor_id == Depot.vendor_id)
            .where(Depot.id == depot_id)
        )
    ).one_or_none()
    if row is None:
        raise DepotNotFound()
    return dict(row._asdict())


# --- stock ----------------------------------------------------------------------------


async def _product(session: AsyncSession, product_id: uuid.UUID) -> Product:
    product = await session.get(Product, product_id)
    if product is None:
        raise ProductNotFound()
    return product


async def _lock_stock_row(
    session: AsyncSession, depot_id: uuid.UUID, product_id: uuid.UUID
) -> StockState:
    """The stock row, created empty if missing, locked for this transaction."""
    await session.execute(
        pg_insert(Stock)
        .values(depot_id=depot_id, product_id=product_id)
        .on_conflict_do_nothing(index_elements=[Stock.depot_id, Stock.product_id])
    )
    row = (
        await session.execute(
            select(*STOCK_COLUMNS)
            .where(Stock.depot_id == depot_id, Stock.product_id == product_id)
            .with_for_update()
        )
    ).one()
    return StockState.of(row)


async def set_stock(
    session: AsyncSession, depot: Depot, product_id: uuid.UUID, body: StockSet, *, actor: str
) -> StockView:
    product = await _product(session, product_id)
    current = await _lock_stock_row(session, depot.id, product_id)
    if body.on_hand < current.reserved:
        raise StockBelowReserved(
            f"on_hand {body.on_hand} is below the {current.reserved} units reserved for orders."
        )
    threshold = (
        body.low_stock_threshold
        if body.low_stock_threshold is not None
        else current.low_stock_threshold
    )
    row = await _update_stock(
        session,
        depot.id,
        product_id,
        {"on_hand": body.on_hand, "low_stock_threshold": threshold},
    )
    await record_stock_change(
        session,
        row,
        vendor_id=depot.vendor_id,
        sku=product.sku,
        kind=MovementKind.SET,
        delta=body.on_hand - current.on_hand,
        actor=actor,
    )
    return _view(row, product)


async def adjust_stock(
    session: AsyncSession, depot: Depot, product_id: uuid.UUID, body: StockAdjust, *, actor: str
) -> StockView:
    product = await _product(session, product_id)
    current = await _lock_stock_row(session, depot.id, product_id)
    on_hand = current.on_hand + body.delta
    if on_hand < current.reserved:
        # Covers a negative result too: reserved is never below zero.
        raise StockBelowReserved(
            f"Adjusting by {body.delta} leaves {on_hand} on hand, below the "
            f"{current.reserved} units reserved for orders."
        )
    if on_hand > MAX_UNITS:
        raise StockAboveMaximum(
            f"Adjusting by {body.delta} leaves {on_hand} on hand, above {MAX_UNITS}."
        )
    row = await _update_stock(
        session, depot.id, product_id, {"on_hand": Stock.on_hand + body.delta}
    )
    await record_stock_change(
        session,
        row,
        vendor_id=depot.vendor_id,
        sku=product.sku,
        kind=MovementKind.ADJUST,
        delta=body.delta,
        note=body.reason,
        actor=actor,
    )
    return _view(row, product)


async def _update_stock(
    session: AsyncSession, depot_id: uuid.UUID, product_id: uuid.UUID, values: dict[str, Any]
) -> StockState:
    row = (
        await session.execute(
            update(Stock)
            .where(Stock.depot_id == depot_id, Stock.product_id == product_id)
            # Only the vendor's own set and adjust come here: a report, so not stale.
            .values(**values, updated_at=func.clock_timestamp(), reported_at=func.clock_timestamp())
            .returning(*STOCK_COLUMNS)
        )
    ).one()
    return StockState.of(row)


async def list_stock(
    session: AsyncSession, depot: Depot, params: PageParams
) -> tuple[list[StockView], int]:
    statement = (
        select(*STOCK_COLUMNS, Product.sku, Product.name.label("product_name"))
        .join(Product, Product.id == Stock.product_id)
        .where(Stock.depot_id == depot.id)
        .order_by(Product.sku)
    )
    total = await session.scalar(
        select(func.count()).select_from(statement.order_by(None).subquery())
    )
    rows = (await session.execute(statement.limit(params.page_size).offset(params.offset))).all()
    views = [
        StockView(
            depot_id=r.depot_id,
            product_id=r.product_id,
            sku=r.sku,
            product_name=r.product_name,
            on_hand=r.on_hand,
            reserved=r.reserved,
            low_stock_threshold=r.low_stock_threshold,
            updated_at=r.updated_at,
        )
        for r in rows
    ]
    return views, total or 0


async def list_movements(
    session: AsyncSession, depot: Depot, product_id: uuid.UUID, params: PageParams
) -> tuple[Sequence[StockMovement], int]:
    statement: Select[Any] = (
        select(StockMovement)
        .where(StockMovement.depot_id == depot.id, StockMovement.product_id == product_id)
        .order_by(StockMovement.id.desc())
    )
    return await fetch_page(session, statement, params)


def _view(row: StockState, product: Product) -> StockView:
    return StockView(
        depot_id=row.depot_id,
        product_id=row.product_id,
        sku=product.sku,
        product_name=product.name,
        on_hand=row.on_hand,
        reserved=row.reserved,
        low_stock_threshold=row.low_stock_threshold,
        updated_at=row.updated_at,
    )


# --- the record of every change -------------------------------------------------------


async def record_stock_change(
    session: AsyncSession,
    row: StockState,
    *,
    vendor_id: uuid.UUID,
    sku: str,
    kind: MovementKind,
    delta: int,
    actor: str,
    reference: str | None = None,
    note: str | None = None,
) -> None:
    """After a stock row changed (`row`: its new values, RETURNING-ed by the UPDATE that
    locked it; the flag is still the one from before): keep the movement, publish
    stock_changed, and low_stock once per crossing below the threshold."""
    await session.execute(
        insert(StockMovement).values(
            depot_id=row.depot_id,
            product_id=row.product_id,
            kind=kind.value,
            delta=delta,
            on_hand_after=row.on_hand,
            reserved_after=row.reserved,
            reason=note,
            reference=reference,
            actor=actor,
        )
    )
    snapshot = events.StockSnapshot(
        depot_id=row.depot_id,
        vendor_id=vendor_id,
        product_id=row.product_id,
        sku=sku,
        on_hand=row.on_hand,
        reserved=row.reserved,
        low_stock_threshold=row.low_stock_threshold,
    )
    await events.stock_changed(
        session, snapshot, kind=kind.value, delta=delta, reference=reference, note=note, actor=actor
    )
    alerted = row.low_stock_alerted
    is_low = snapshot.available < snapshot.low_stock_threshold
    if is_low != alerted:
        await session.execute(
            update(Stock)
            .where(Stock.depot_id == row.depot_id, Stock.product_id == row.product_id)
            .values(low_stock_alerted=is_low)
        )
    if is_low and not alerted:
        await events.low_stock(session, snapshot)
