"""Vendor price lists: one current row per (vendor, product), every version kept in
price_history, and the current prices with their history version (which quotes cite)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Select, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.clock import utcnow
from flow_shared.pagination import PageParams, fetch_page
from pricing_service.clients import InventoryClient
from pricing_service.errors import DepositNotAllowed
from pricing_service.models import Price, PriceHistory
from pricing_service.schemas import PriceInput

_PRICE_FIELDS = (
    "unit_price",
    "currency",
    "delivery_fee_per_km",
    "min_delivery_fee",
    "emergency_surcharge_pct",
    "deposit_per_cylinder",
)

# Only serial-tracked products take a deposit: a returned serial is what refunds it.
CYLINDER_CATEGORY = "oxygen_cylinder"

# (vendor, product) → (price row, id of its current history version).
CurrentPrices = dict[tuple[uuid.UUID, uuid.UUID], tuple[Price, uuid.UUID]]


async def set_price(
    session: AsyncSession,
    *,
    vendor_id: uuid.UUID,
    product_id: uuid.UUID,
    body: PriceInput,
    actor_id: uuid.UUID,
    inventory: InventoryClient,
) -> Price:
    """Create or change a vendor's price; every version is kept in price_history.

    A deposit is refused (422) unless the product is an oxygen cylinder; inventory-service
    is only asked when a deposit is set, so a plain price never depends on it being up."""
    if body.deposit_per_cylinder > Decimal(0):
        await _ensure_cylinder(inventory, product_id)
    now = utcnow()
    values: dict[str, object] = {name: getattr(body, name) for name in _PRICE_FIELDS}
    first = await _insert_first_version(
        session,
        vendor_id=vendor_id,
        product_id=product_id,
        values=values,
        actor_id=actor_id,
        now=now,
    )
    if first is not None:
        return first
    return await _change_price(
        session,
        vendor_id=vendor_id,
        product_id=product_id,
        values=values,
        actor_id=actor_id,
        now=now,
    )


async def _ensure_cylinder(inventory: InventoryClient, product_id: uuid.UUID) -> None:
    category = await inventory.product_category(product_id)
    if category != CYLINDER_CATEGORY:
        raise DepositNotAllowed(
            f"Product {product_id} is not a serial-tracked {CYLINDER_CATEGORY}; "
            "only those carry a deposit.",
            extra={"product_id": str(product_id), "category": category},
        )


async def _insert_first_version(
    session: AsyncSession,
    *,
    vendor_id: uuid.UUID,
    product_id: uuid.UUID,
    values: dict[str, object],
    actor_id: uuid.UUID,
    now: datetime,
) -> Price | None:
    """Version 1 of this price, or None when the vendor already prices the product."""
    new_id = await session.scalar(
        pg_insert(Price)
        .values(
            id=uuid.uuid4(),
            vendor_id=vendor_id,
            product_id=product_id,
            version=1,
            valid_from=now,
            updated_by=actor_id,
            created_at=now,
            updated_at=now,
            **values,
        )
        # A concurrent first PUT for the same product waits here, then updates below.
        .on_conflict_do_nothing(index_elements=["vendor_id", "product_id"])
        .returning(Price.id)
    )
    if new_id is None:
        return None
    price = await session.get_one(Price, new_id)
    session.add(_history_row(price, changed_by=actor_id))
    await session.flush()
    return price


async def _change_price(
    session: AsyncSession,
    *,
    vendor_id: uuid.UUID,
    product_id: uuid.UUID,
    values: dict[str, object],
    actor_id: uuid.UUID,
    now: datetime,
) -> Price:
    """The next version of an existing price; the same values again make no version."""
    current = await session.scalar(
        select(Price)
        .where(Price.vendor_id == vendor_id, Price.product_id == product_id)
        .with_for_update()
    )
    assert current is not None  # the conflicting row exists and rows are never deleted
    price = current
    if all(getattr(price, name) == value for name, value in values.items()):
        return price  # nothing changed: no new version
    await session.execute(
        update(PriceHistory)
        .where(PriceHistory.price_id == price.id, PriceHistory.valid_to.is_(None))
        .values(valid_to=now)
    )
    for name, value in values.items():
        setattr(price, name, value)
    price.version += 1
    price.valid_from = now
    price.updated_at = now
    price.updated_by = actor_id
    session.add(_history_row(price, changed_by=actor_id))
    await session.flush()
    return price


def _history_row(price: Price, *, changed_by: uuid.UUID) -> PriceHistory:
    return PriceHistory(
        price_id=price.id,
        version=price.version,
        vendor_id=price.vendor_id,
        product_id=price.product_id,
        unit_price=price.unit_price,
        currency=price.currency,
        delivery_fee_per_km=price.delivery_fee_per_km,
        min_delivery_fee=price.min_delivery_fee,
        emergency_surcharge_pct=price.emergency_surcharge_pct,
        deposit_per_cylinder=price.deposit_per_cylinder,
        valid_from=price.valid_from,
        valid_to=None,
        changed_by=changed_by,
    )


async def list_vendor_prices(
    session: AsyncSession, vendor_id: uuid.UUID, params: PageParams
) -> tuple[Sequence[Price], int]:
    statement: Select[Price] = (
        select(Price).where(Price.vendor_id == vendor_id).order_by(Price.product_id)
    )
    return await fetch_page(session, statement, params)


async def current_prices(
    session: AsyncSession, vendor_ids: Sequence[uuid.UUID], product_ids: Sequence[uuid.UUID]
) -> CurrentPrices:
    """(vendor, product) → (price row, id of its current history version)."""
    if not vendor_ids or not product_ids:
        return {}
    rows = await session.execute(
        select(Price, PriceHistory.id)
        .join(
            PriceHistory,
            (PriceHistory.price_id == Price.id) & (PriceHistory.version == Price.version),
        )
        .where(Price.vendor_id.in_(set(vendor_ids)), Price.product_id.in_(set(product_ids)))
    )
    return {(price.vendor_id, price.product_id): (price, history_id) for price, history_id in rows}
