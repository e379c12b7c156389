"""Pricing rules: price lists with history, quotes (stored, then pruned once long
expired) and the vendor comparison (priced like quotes, stored never).

Functions take the request's session and only flush; the request commits.
Upstream calls happen before the database work of a request, so a slow
inventory or location answer does not hold a pooled connection.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import Select, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.auth import Principal
from flow_shared.lifecycle import delete_older_than
from flow_shared.metrics import business_counter
from flow_shared.pagination import PageParams, fetch_page
from flow_shared.validation import AmountTooLarge
from pricing_service.clients import InventoryClient, LocationClient
from pricing_service.config import Settings
from pricing_service.errors import (
    DepotNotFound,
    MixedCurrency,
    NoPrice,
    OutOfDeliveryRange,
    QuoteNotFound,
    VendorUnavailable,
)
from pricing_service.models import Price, PriceHistory, Quote, QuoteItem
from pricing_service.pricing import LinePrice, compute_quote, distance_decimal
from pricing_service.schemas import (
    CompareItem,
    CompareOut,
    PriceInput,
    Priority,
    QuoteFigures,
    QuoteItemInput,
    QuoteOut,
    QuoteRequest,
    UpstreamNearbyItem,
)

log = structlog.get_logger("pricing_service.service")

QUOTES_CREATED = business_counter(
    "flow_pricing_quotes_created_total",
    "Quotes stored, by source and priority",
    ("source", "priority"),
)
QUOTES_PRUNED = business_counter(
    "flow_pricing_quotes_pruned_total", "Stored quotes deleted after their retention"
)
COMPARE_CACHE = business_counter(
    "flow_pricing_compare_cache_total", "Compare answers by cache outcome", ("outcome",)
)

_PRICE_FIELDS = (
    "unit_price",
    "currency",
    "delivery_fee_per_km",
    "min_delivery_fee",
    "emergency_surcharge_pct",
)


# ----- prices -----


async def set_price(
    session: AsyncSession,
    *,
    vendor_id: uuid.UUID,
    product_id: uuid.UUID,
    body: PriceInput,
    actor_id: uuid.UUID,
) -> Price:
    """Create or change a vendor's price; every version is kept in price_history."""
    now = datetime.now(UTC)
    values = {name: getattr(body, name) for name in _PRICE_FIELDS}
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
    if new_id is not None:
        price = await session.get_one(Price, new_id)
        session.add(_history_row(price, changed_by=actor_id))
        await session.flush()
        return price

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


# ----- quotes -----


@dataclass(frozen=True, slots=True)
class QuoteSource:
    """Who asked for a quote: a user (api, compare) or a service (internal)."""

    kind: str
    user_id: uuid.UUID | None = None
    org_id: uuid.UUID | None = None


async def _current_prices(
    session: AsyncSession, vendor_ids: Sequence[uuid.UUID], product_ids: Sequence[uuid.UUID]
) -> dict[tuple[uuid.UUID, uuid.UUID], tuple[Price, uuid.UUID]]:
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


def _build_quote(
    *,
    vendor_id: uuid.UUID,
    depot_id: uuid.UUID,
    items: Sequence[QuoteItemInput],
    prices: dict[tuple[uuid.UUID, uuid.UUID], tuple[Price, uuid.UUID]],
    distance_km: Decimal,
    priority: Priority,
    delivery_lat: float,
    delivery_lon: float,
    settings: Settings,
    source: QuoteSource,
) -> Quote:
    """The priced quote, not added to the session: only a caller that stores it does."""
    missing = sorted({str(i.product_id) for i in items if (vendor_id, i.product_id) not in prices})
    if missing:
        raise NoPrice(
            f"Vendor {vendor_id} has no price for product(s) {', '.join(missing)}.",
            extra={"product_ids": missing},
        )
    rows = [prices[(vendor_id, item.product_id)] for item in items]
    currencies = sorted({price.currency for price, _ in rows})
    if len(currencies) > 1:
        raise MixedCurrency(
            f"Vendor {vendor_id} prices these products in {', '.join(currencies)}; "
            "quote them separately."
        )
    amounts = compute_quote(
        [
            LinePrice(
                quantity=item.quantity,
                unit_price=price.unit_price,
                delivery_fee_per_km=price.delivery_fee_per_km,
                min_delivery_fee=price.min_delivery_fee,
                emergency_surcharge_pct=price.emergency_surcharge_pct,
            )
            for item, (price, _) in zip(items, rows, strict=True)
        ],
        distance_km=distance_km,
        priority=priority,
        tax_rate=settings.tax_rate,
    )
    now = datetime.now(UTC)
    quote = Quote(
        id=uuid.uuid4(),
        vendor_id=vendor_id,
        depot_id=depot_id,
        priority=priority,
        delivery_lat=delivery_lat,
        delivery_lon=delivery_lon,
        distance_km=distance_km,
        subtotal=amounts.subtotal,
        delivery_fee=amounts.delivery_fee,
        surcharge=amounts.surcharge,
        tax_rate=settings.tax_rate,
        tax=amounts.tax,
        total=amounts.total,
        currency=currencies[0],
        source=source.kind,
        requested_by=source.user_id,
        requested_by_org=source.org_id,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.quote_ttl_seconds),
        items=[
            QuoteItem(
                line_no=line_no,
                product_id=item.product_id,
                quantity=item.quantity,
                # Copied, not referenced: a later price change never alters this quote.
                unit_price=price.unit_price,
                line_total=line_total,
                price_history_id=history_id,
            )
            for line_no, (item, (price, history_id), line_total) in enumerate(
                zip(items, rows, amounts.line_totals, strict=True), start=1
            )
        ],
    )
    return quote


async def create_quote(
    session: AsyncSession,
    inventory: InventoryClient,
    location: LocationClient,
    settings: Settings,
    request: QuoteRequest,
    source: QuoteSource,
) -> Quote:
    depot = await inventory.get_depot(request.depot_id)
    if depot.vendor_id != request.vendor_id:
        raise DepotNotFound(
            f"Depot {request.depot_id} is not a depot of vendor {request.vendor_id}."
        )
    if not depot.vendor_active:
        raise VendorUnavailable(
            f"Vendor {request.vendor_id} is not verified or is suspended and cannot be quoted."
        )
    route = await location.estimate(
        from_lat=depot.lat,
        from_lon=depot.lon,
        to_lat=request.delivery.lat,
        to_lon=request.delivery.lon,
        priority=request.priority,
    )
    distance_km = distance_decimal(route.distance_km)
    if (
        settings.enforce_service_radius
        and depot.service_radius_km is not None
        and distance_km > Decimal(str(depot.service_radius_km))
    ):
        raise OutOfDeliveryRange(
            f"The delivery point is {distance_km} km from depot {depot.depot_id}, "
            f"beyond its {depot.service_radius_km} km delivery range."
        )
    prices = await _current_prices(
        session, [request.vendor_id], [item.product_id for item in request.items]
    )
    quote = _build_quote(
        vendor_id=request.vendor_id,
        depot_id=request.depot_id,
        items=request.items,
        prices=prices,
        distance_km=distance_km,
        priority=request.priority,
        delivery_lat=request.delivery.lat,
        delivery_lon=request.delivery.lon,
        settings=settings,
        source=source,
    )
    session.add(quote)
    await session.flush()
    QUOTES_CREATED.labels(source=source.kind, priority=request.priority).inc()
    return quote


async def prune_expired_quotes(
    session: AsyncSession, *, now: datetime, retention: timedelta, batch_size: int
) -> int:
    """Delete up to `batch_size` quotes that expired more than `retention` before `now`
    (their lines go with them, ON DELETE CASCADE); returns how many.

    Orders copy the prices they use, so an expired quote is only kept for a while for
    who-was-quoted-what questions."""
    count = await delete_older_than(
        session, Quote.id, Quote.expires_at, now - retention, batch_size=batch_size
    )
    QUOTES_PRUNED.inc(count)
    return count


async def get_quote(session: AsyncSession, quote_id: uuid.UUID) -> Quote:
    quote = await session.get(Quote, quote_id)
    if quote is None:
        raise QuoteNotFound(f"Quote {quote_id} does not exist.")
    return quote


async def get_quote_for(session: AsyncSession, quote_id: uuid.UUID, principal: Principal) -> Quote:
    """A quote as a user may see it: the org that asked for it, the quoted vendor, or an admin."""
    quote = await session.get(Quote, quote_id)
    if quote is None or not (
        principal.is_platform_admin or principal.org_id in (quote.requested_by_org, quote.vendor_id)
    ):
        raise QuoteNotFound(f"Quote {quote_id} does not exist.")
    return quote


def quote_out(quote: Quote) -> QuoteOut:
    return QuoteOut.model_validate(
        {
            **_figures(quote),
            "quote_id": quote.id,
            "created_at": quote.created_at,
            "expires_at": quote.expires_at,
        }
    )


def quote_figures(quote: Quote) -> QuoteFigures:
    return QuoteFigures.model_validate(_figures(quote))


def _figures(quote: Quote) -> dict[str, object]:
    return {
        "vendor_id": quote.vendor_id,
        "depot_id": quote.depot_id,
        "priority": quote.priority,
        "distance_km": float(quote.distance_km),
        "items": [
            {
                "product_id": item.product_id,
                "quantity": item.quantity,
                "unit_price": item.unit_price,
                "line_total": item.line_total,
            }
            for item in quote.items
        ],
        "subtotal": quote.subtotal,
        "delivery_fee": quote.delivery_fee,
        "surcharge": quote.surcharge,
        "tax_rate": quote.tax_rate,
        "tax": quote.tax,
        "total": quote.total,
        "currency": quote.currency,
    }


# ----- compare -----


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
        prices = await _current_prices(session, [d.vendor_id for d in depots], [query.product_id])
        line = QuoteItemInput(product_id=query.product_id, quantity=query.quantity)
        source = QuoteSource(kind="compare")
        for depot in depots:
            distance = distances.get(str(depot.depot_id))
            if (depot.vendor_id, query.product_id) not in prices or distance is None:
                continue  # no price from this vendor (or no route): not comparable
            try:
                quote = _build_quote(
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
                    quote=quote_figures(quote),
                )
            )
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
        generated_at=datetime.now(UTC),
    )
