"""The vendor comparison: every nearby depot with the stock, its vendor priced as a quote
would be, stored never. Answers are cached in Redis for COMPARE_CACHE_SECONDS; that is
safe because an order re-reserves stock and re-quotes, never trusting a comparison.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.clock import utcnow
from flow_shared.metrics import business_counter
from flow_shared.validation import AmountTooLarge
from pricing_service.clients import InventoryClient, LocationClient
from pricing_service.config import Settings
from pricing_service.schemas import (
    CompareItem,
    CompareOut,
    Priority,
    QuoteItemInput,
    UpstreamNearbyItem,
)
from pricing_service.service.money import distance_decimal
from pricing_service.service.prices import CurrentPrices, current_prices
from pricing_service.service.quotes import QuoteSource, build_quote, quote_figures

log = structlog.get_logger("pricing_service.service")

COMPARE_CACHE = business_counter(
    "flow_pricing_compare_cache_total", "Compare answers by cache outcome", ("outcome",)
)


@dataclass(frozen=True, slots=True)
class CompareQuery:
    product_id: uuid.UUID
    quantity: int
    lat: float
    lon: float
    radius_km: float
    priority: Priority

    def cache_key(self, prefix: str) -> str:
        # Coordinates to ~1 m so equivalent requests share an entry.
        normalised = "|".join(
            (
                str(self.product_id),
                str(self.quantity),
                f"{self.lat:.5f}",
                f"{self.lon:.5f}",
                f"{self.radius_km:.3f}",
                self.priority,
            )
        )
        digest = hashlib.sha256(normalised.encode()).hexdigest()[:32]
        return f"{prefix}pricing:compare:{digest}"


async def compare(
    session: AsyncSession,
    redis: Redis,
    inventory: InventoryClient,
    location: LocationClient,
    settings: Settings,
    query: CompareQuery,
) -> str:
    """The compare answer as JSON, from the cache when a fresh one exists.

    The cached answer may be up to COMPARE_CACHE_SECONDS old; that is safe
    because an order re-reserves stock and re-quotes, never trusting it.
    """
    key = query.cache_key(settings.redis_key_prefix)
    if settings.compare_cache_seconds > 0:
        try:
            cached = await redis.get(key)
        except RedisError:
            # The cache is an optimisation: without Redis, compute the answer.
            log.warning("compare_cache_read_failed")
            cached = None
        if cached is not None:
            COMPARE_CACHE.labels(outcome="hit").inc()
            return cached if isinstance(cached, str) else cached.decode()
    COMPARE_CACHE.labels(outcome="miss").inc()

    answer = await _compute_compare(session, inventory, location, settings, query)
    body = answer.model_dump_json()
    if settings.compare_cache_seconds > 0:
        try:
            await redis.set(key, body, ex=settings.compare_cache_seconds)
        except RedisError:
            log.warning("compare_cache_write_failed")
    return body


async def _compute_compare(
    session: AsyncSession,
    inventory: InventoryClient,
    location: LocationClient,
    settings: Settings,
    query: CompareQuery,
) -> CompareOut:
    """Every nearby vendor priced as a quote would be, without storing one: a browse
    must not write (POST /quotes stores a quote; an order asks for its own)."""
    depots = await _nearby_depots(
        inventory,
        query,
        max_depots=settings.compare_max_depots,
        page_size=settings.compare_nearby_page_size,
    )
    items: list[CompareItem] = []
    if depots:
        routes = await location.batch(
            to_lat=query.lat,
            to_lon=query.lon,
            origins=[(str(d.depot_id), d.lat, d.lon) for d in depots],
            priority=query.priority,
        )
        distances = {route.id: distance_decimal(route.distance_km) for route in routes.routes}
        prices = await current_prices(session, [d.vendor_id for d in depots], [query.product_id])
        items = _priced_offers(depots, distances, prices, settings, query)
    # Fresh stock first (stale availability may be gone), then cheapest total.
    items.sort(
        key=lambda i: (i.stale, i.quote.total, i.distance_km, str(i.vendor_id), str(i.depot_id))
    )
    return CompareOut(
        items=items,
        product_id=query.product_id,
        quantity=query.quantity,
        priority=query.priority,
        radius_km=query.radius_km,
        generated_at=utcnow(),
    )


async def _nearby_depots(
    inventory: InventoryClient, query: CompareQuery, *, max_depots: int, page_size: int
) -> list[UpstreamNearbyItem]:
    """Depots with at least `quantity` in stock within the radius, nearest first, capped."""
    found: dict[uuid.UUID, UpstreamNearbyItem] = {}
    page = 1
    page_size = min(page_size, max_depots)
    while len(found) < max_depots:
        result = await inventory.nearby(
            lat=query.lat,
            lon=query.lon,
            radius_km=query.radius_km,
            product_id=query.product_id,
            min_quantity=query.quantity,
            page=page,
            page_size=page_size,
        )
        for item in result.items:
            # Defensive: only rows of the asked product with enough stock, one per depot.
            if item.product_id == query.product_id and item.available >= query.quantity:
                found.setdefault(item.depot_id, item)
        if not result.items or page * page_size >= result.total:
            break
        page += 1
    return list(found.values())[:max_depots]


def _priced_offers(
    depots: Sequence[UpstreamNearbyItem],
    distances: dict[str, Decimal],
    prices: CurrentPrices,
    settings: Settings,
    query: CompareQuery,
) -> list[CompareItem]:
    """One priced offer per depot that can be compared, in the depots' order."""
    line = QuoteItemInput(product_id=query.product_id, quantity=query.quantity)
    source = QuoteSource(kind="compare")
    items: list[CompareItem] = []
    for depot in depots:
        distance = distances.get(str(depot.depot_id))
        if (depot.vendor_id, query.product_id) not in prices or distance is None:
            continue  # no price from this vendor (or no route): not comparable
        try:
            quote = build_quote(
                vendor_id=depot.vendor_id,
                depot_id=depot.depot_id,
                items=[line],
                prices=prices,
                distance_km=distance,
                priority=query.priority,
                delivery_lat=query.lat,
                delivery_lon=query.lon,
                settings=settings,
                source=source,
            )
        except AmountTooLarge:
            continue  # this vendor could never be ordered from at this quantity
        items.append(
            CompareItem(
                vendor_id=depot.vendor_id,
                vendor_name=depot.vendor_name,
                depot_id=depot.depot_id,
                depot_name=depot.depot_name,
                distance_km=float(distance),
                available=depot.available,
                stale=depot.stale,
                deposit_per_cylinder=quote.items[0].deposit_per_unit,
                quote=quote_figures(quote),
            )
        )
    return items
