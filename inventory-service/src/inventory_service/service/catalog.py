"""The catalogue: platform-wide products, stock near a point, a vendor's availability."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import Select, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.db import Database
from flow_shared.errors import UnprocessableEntity
from flow_shared.json_codec import dumps, loads
from flow_shared.pagination import Page, PageParams, fetch_page
from flow_shared.unit_of_work import unit_of_work
from inventory_service.cache import current_generation, nearby_key, read_cached, store_cached
from inventory_service.errors import DuplicateSku, ProductNotFound, VendorNotFound
from inventory_service.models import Product, ProductCategory
from inventory_service.schemas import (
    NearbyItem,
    ProductCreate,
    ProductUpdate,
    VendorAvailability,
    gas_refusal,
)

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
            gas_liters=body.gas_liters,
        )
        .on_conflict_do_nothing(index_elements=[Product.sku])
        .returning(Product.id)
    )
    if product_id is None:
        raise DuplicateSku(f"The SKU {body.sku} is taken.")
    product = await session.get(Product, product_id)
    assert product is not None
    return product


async def update_product(
    session: AsyncSession, product_id: uuid.UUID, body: ProductUpdate
) -> Product:
    """Change the fields `body` names; the product's gas must still fit its category."""
    product = await session.get(Product, product_id, with_for_update=True)
    if product is None:
        raise ProductNotFound()
    changes = body.model_dump(exclude_unset=True)
    if "gas_liters" in changes:
        refusal = gas_refusal(ProductCategory(product.category), body.gas_liters)
        if refusal is not None:
            raise UnprocessableEntity(refusal)
    for field, value in changes.items():
        if value is None and field != "gas_liters":
            raise UnprocessableEntity(f"{field} cannot be removed, only changed.")
        setattr(product, field, value)
    await session.flush()
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


# Distances are great-circle distances on the sphere (`ST_DWithin(a, b, r, false)`,
# `ST_Distance(a, b, false)`): cheaper than on the spheroid and within about 0.5 % of
# it, and the radius test, the order and the reported distance_km all use this one
# measure, so they always agree with each other.
#
# Which rows match comes from one of two spatial indexes:
# - a product: its stock rows near the point straight from the GiST index on
#   stock (product_id, location). The row carries its depot's vendor_id and location
#   (a trigger keeps them equal to the depot's), so the cost follows the product's
#   matches, not the number of depots around: no depot is read for a row not shown.
# - no product (a category, or everything): depots near the point (GiST index on
#   depots.location), then their stock rows.
_PRODUCT_MATCHES = """
    SELECT s.depot_id, s.product_id, s.vendor_id, v.name AS vendor_name, s.location,
           s.on_hand - s.reserved AS available, s.updated_at, s.reported_at
    FROM origin
    JOIN stock s ON s.product_id = :product_id
                AND ST_DWithin(s.location, origin.point, :radius_m, false)
    JOIN vendors v ON v.vendor_id = s.vendor_id AND v.verified AND NOT v.suspended
    WHERE s.on_hand - s.reserved >= :min_quantity{category}"""

_DEPOT_MATCHES = """
    SELECT s.depot_id, s.product_id, d.vendor_id, v.name AS vendor_name, d.location,
           s.on_hand - s.reserved AS available, s.updated_at, s.reported_at
    FROM origin
    JOIN depots d ON ST_DWithin(d.location, origin.point, :radius_m, false)
    JOIN vendors v ON v.vendor_id = d.vendor_id AND v.verified AND NOT v.suspended
    JOIN stock s ON s.depot_id = d.id
    WHERE s.on_hand - s.reserved >= :min_quantity{category}"""

# The category's few product ids, computed once: a join to products here lets a generic
# plan scan the depots once per product of the category.
_CATEGORY_FILTER = """
      AND s.product_id = ANY(ARRAY(SELECT id FROM products WHERE category = :category))"""

# One statement: the matches (materialized once), their count (no distance computed for
# it), the page (distances for the sort, then depot and product names for its rows only),
# fresh stock before stale (not updated since :stale_before), then nearest first with
# (depot_id, product_id) breaking ties. The LEFT JOIN keeps the total
# even for a page past the end.
_NEARBY_SQL = """
WITH origin AS (
    SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography AS point
),
matches AS MATERIALIZED ({matches}
),
page AS (
    SELECT m.depot_id, m.product_id, m.vendor_id, m.vendor_name, m.available, m.updated_at,
           m.reported_at, m.reported_at < :stale_before AS stale,
           ST_Distance(m.location, origin.point, false) AS distance_m
    FROM matches AS m, origin
    ORDER BY stale, distance_m, m.depot_id, m.product_id
    LIMIT :limit OFFSET :offset
)
SELECT totals.total, page.depot_id, d.name AS depot_name, page.vendor_id, page.vendor_name,
       page.product_id, p.sku, p.name AS product_name, page.available, page.updated_at,
       page.reported_at, page.stale, page.distance_m, d.lat, d.lon
FROM (SELECT count(*) AS total FROM matches) AS totals
LEFT JOIN (
    page
    JOIN depots d ON d.id = page.depot_id
    JOIN products p ON p.id = page.product_id
) ON true
ORDER BY page.stale, page.distance_m, page.depot_id, page.product_id
"""


def nearby_sql(*, by_product: bool, by_category: bool) -> str:
    """The nearby statement for these filters (four fixed texts, so each stays one
    prepared statement per connection)."""
    matches = _PRODUCT_MATCHES if by_product else _DEPOT_MATCHES
    category = _CATEGORY_FILTER if by_category else ""
    return _NEARBY_SQL.format(matches=matches.format(category=category))


# Built once: formatting the statement and wrapping it in text() on every request is
# work repeated on the hottest read path.
_NEARBY_STATEMENTS = {
    (by_product, by_category): text(nearby_sql(by_product=by_product, by_category=by_category))
    for by_product in (False, True)
    for by_category in (False, True)
}


async def find_nearby(
    session: AsyncSession, query: NearbyQuery, params: PageParams, *, stale_before: datetime
) -> Page[NearbyItem]:
    """Stock of verified vendors within `radius_km` of the point: fresh rows first, then
    those not reported by the vendor since `stale_before` (`stale`), each nearest first (sphere
    distance, ties by depot then product); one page and the exact total, in one query."""
    values: dict[str, Any] = {
        "stale_before": stale_before,
        "lat": query.lat,
        "lon": query.lon,
        "radius_m": query.radius_km * 1000.0,
        "min_quantity": query.min_quantity,
        "limit": params.page_size,
        "offset": params.offset,
    }
    if query.product_id is not None:
        values["product_id"] = query.product_id
    if query.category is not None:
        values["category"] = query.category.value
    statement = _NEARBY_STATEMENTS[(query.product_id is not None, query.category is not None)]
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
            reported_at=r.reported_at,
            stale=r.stale,
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
    stale_before: datetime,
) -> tuple[bytes, bool]:
    """The nearby page as JSON, and whether it came from the cache (this catalogue
    generation's key). Stock turning stale is no stock change (no new generation): a
    cached page may show it fresh for at most `cache_seconds` (at most an hour)."""
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
    async with unit_of_work(database) as uow:
        page = await find_nearby(uow.session, query, params, stale_before=stale_before)
    body = dumps(page.model_dump(mode="json"))
    if key is not None:
        await store_cached(redis, key, body, cache_seconds)
    return body, False
