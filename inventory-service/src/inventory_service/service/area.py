"""Read-side answers other services ask of inventory about places and products.

- which vendors have a depot inside an area (admin-service: who hears a shortage);
- the category of products (order-service: which products a shortage covers).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.models import Depot, Product


async def vendors_within(
    session: AsyncSession, *, lat: float, lon: float, radius_km: float
) -> list[uuid.UUID]:
    """Every vendor organisation with a depot within `radius_km` of the point (any
    verification state: a vendor being verified still needs to hear of a shortage)."""
    # The same sphere distance as the nearby search (catalog.py), on the depots' GiST index.
    rows = await session.scalars(
        select(Depot.vendor_id)
        .where(
            text(
                "ST_DWithin(depots.location,"
                " ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :radius_m, false)"
            ).bindparams(lon=lon, lat=lat, radius_m=radius_km * 1000.0)
        )
        .distinct()
        .order_by(Depot.vendor_id)
    )
    return list(rows)


async def product_categories(
    session: AsyncSession, product_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Each known product's category; unknown ids are left out."""
    rows = await session.execute(
        select(Product.id, Product.category).where(Product.id.in_(list(product_ids)))
    )
    return {row[0]: row[1] for row in rows}
