"""The catalogue: platform-wide products, stock near a point, a vendor's availability."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import Select, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.db import Database
from flow_shared.jsonutil import dumps, loads
from flow_shared.pagination import Page, PageParams, fetch_page
from inventory_service.cache import current_generation, nearby_key, read_cached, store_cached
from inventory_service.errors import DuplicateSku, VendorNotFound
from inventory_service.models import Product, ProductCategory
from inventory_service.schemas import NearbyItem, ProductCreate, VendorAvailability

# --- products -------------------------------------------------------------------------


async def list_products(
    session: AsyncSession,
    params: PageParams,
    *,
    category: ProductCategory | None,
    q: str | None,
) -> tuple[Sequence[Product], int]:
    statement: Select[Any] = select(Product).order_by(Product.category, Product.sku)
    if category is not None:
        statement = statement.where(Product.category == category.value)
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        statement = statement.where(
            or_(
                Product.sku.ilike(pattern, escape="\\"),
                Product.name.ilike(pattern, escape="\\"),
                Product.description.ilike(pattern, escape="\\"),
            )
        )
    return await fetch_page(session, statement, params)


async def create_product(session: AsyncSession, body: ProductCreate) -> Product:
    # ON CONFLICT, not check-then-insert: two admins adding one SKU get one row and one 409.
    product_id = await session.scalar(
        pg_insert(Product)
        .values(
            id=uuid.uuid4(),
            sku=body.sku,
            name=body.name,
            category=body.category.value,
            unit=body.unit,
            description=body.description,
        )
        .on_conflict_do_nothing(index_elements=[Product.sku])
        .returning(Product.id)
    )
    if product_id is None:
        raise DuplicateSku(f"The SKU {body.sku} is taken.")
    product = await session.get(Product, product_id)
    assert product is not None
    return product


# --- nearby ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NearbyQuery:
    lat: float
    lon: float
    radius_km: float
    product_id: uuid.UUID | None
    category: ProductCategory | None
    min_quantity: int

    def normalised(self, params: PageParams) -> str:
        """The cache identity: equal searches give equal strings (1e-6 deg is ~0.1 m)."""
        return "|".join(
            [
                f"{self.lat:.6f}",
                f"{self.lon:.6f}",
                f"{self.radius_km:.3f}",
                str(self.product_id or ""),
                self.category.value if self.category else "",
                str(self.min_quantity),
                str(params.page),
                str(params.page_size),
            ]
        )


# One statement: the radius filter (GiST index on depots.location), the verified-vendor
# projection, stock and products joined, nearest first, one page, and the total. The
# LEFT JOIN LATERAL keeps the total even for a page past the end.
_NEARBY_SQL = """
WITH origin AS (
    SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography AS point
),
matches AS (
    SELECT d.id AS depot_id, d.name AS depot_name, d.vendor_id, v.name AS vendor_name,
           p.id AS product_id, p.sku, p.name AS product_name,
           s.on_hand - s.reserved AS available, s.updated_at,
           ST_Distance(d.location, origin.point) AS distance_m, d.lat, d.lon
    FROM origin
    JOIN depots d ON ST_DWithin(d.location, origin.point, :radius_m)
    JOIN vendors v ON v.vendor_id = d.vendor_id AND v.verified AND NOT v.suspended
    JOIN stock s ON s.depot_id = d.id
    JOIN products p ON p.id = s.product_id
    WHERE s.on_hand - s.reserved >= :min_quantity
      {filters}
)
SELECT totals.total, page.*
FROM (SELECT count(*) AS total FROM matches) AS totals
LEFT JOIN LATERAL (
    SELECT * FROM matches
    ORDER BY distance_m, depot_id, product_id
    LIMIT :limit OFFSET :offset
) AS page ON true
ORDER BY page.distance_m, page.depot_id, page.product_id
"""


async def find_nearby(
    session: AsyncSession, query: NearbyQuery, params: PageParams
) -> Page[NearbyItem]:
    filters: list[str] = []
    values: dict[str, Any] = {
        "lat": query.lat,
        "lon": query.lon,
        "radius_m": query.radius_km * 1000.0,
        "min_quantity": query.min_quantity,
        "limit": params.page_size,
        "offset": params.offset,
    }
    if query.product_id is not None:
        filters.append("AND s.product_id = :product_id")
        values["product_id"] = query.product_id
    if query.category is not None:
        filters.append("AND p.category = :category")
        values["category"] = query.category.value
    statement = text(_NEARBY_SQL.format(filters="\n      ".join(filters)))
    rows = (await session.execute(statement, values)).all()
    total = int(rows[0].total) if rows else 0
    items = [
        NearbyItem(
            depot_id=r.depot_id,
            depot_name=r.depot_name,
            vendor_id=r.vendor_id,
            vendor_name=r.vendor_name,
            product_id=r.product_id,
            sku=r.sku,
            product_name=r.product_name,
            available=r.available,
            updated_at=r.updated_at,
            distance_km=round(r.distance_m / 1000.0, 3),
            lat=r.lat,
            lon=r.lon,
        )
        for r in rows
        if r.depot_id is not None
    ]
    return Page[NearbyItem].of(items, params, total)


# --- a vendor's availability ----------------------------------------------------------

_AVAILABILITY_SQL = text(
    """
SELECT v.vendor_id, v.name AS vendor_name,
       COALESCE((
           SELECT json_agg(json_build_object(
                      'depot_id', d.id, 'name', d.name, 'lat', d.lat, 'lon', d.lon,
                      'products', COALESCE((
                          SELECT json_agg(json_build_object(
                                     'product_id', p.id, 'sku', p.sku,
                                     'available', s.on_hand - s.reserved,
                                     'updated_at', s.updated_at)
                                 ORDER BY p.sku)
                          FROM stock s JOIN products p ON p.id = s.product_id
                          WHERE s.depot_id = d.id), '[]'::json))
                  ORDER BY d.name, d.id)
           FROM depots d WHERE d.vendor_id = v.vendor_id), '[]'::json) AS depots
FROM vendors v
WHERE v.vendor_id = :vendor_id AND v.verified AND NOT v.suspended
"""
)


async def vendor_availability(session: AsyncSession, vendor_id: uuid.UUID) -> VendorAvailability:
    """One query; an unknown, unverified or suspended vendor is 404."""
    row = (await session.execute(_AVAILABILITY_SQL, {"vendor_id": vendor_id})).one_or_none()
    if row is None:
        raise VendorNotFound()
    depots = loads(row.depots) if isinstance(row.depots, str) else row.depots
    return VendorAvailability.model_validate(
        {"vendor_id": row.vendor_id, "vendor_name": row.vendor_name, "depots": depots}
    )


async def cached_nearby(
    database: Database,
    redis: Redis,
    *,
    redis_prefix: str,
    cache_seconds: int,
    query: NearbyQuery,
    params: PageParams,
) -> tuple[bytes, bool]:
    """The nearby page as JSON, and whether it came from the cache (this catalogue
    generation's key)."""
    generation = await current_generation(redis, redis_prefix)
    key = (
        nearby_key(redis_prefix, generation, query.normalised(params))
        if generation is not None
        else None
    )
    if key is not None:
        cached = await read_cached(redis, key)
        if cached is not None:
            return cached, True
    async with database.sessionmaker() as session:
        page = await find_nearby(session, query, params)
    body = dumps(page.model_dump(mode="json"))
    if key is not None:
        await store_cached(redis, key, body, cache_seconds)
    return body, False
