"""Quotes: priced from the vendor's current prices and the route from the depot, stored
(the prices copied, so a later change never alters one), read back, and pruned once
long expired. `build_quote` is also how the comparison prices a vendor, storing nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.auth import Principal
from flow_shared.clock import utcnow
from flow_shared.lifecycle import delete_older_than
from flow_shared.metrics import business_counter
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
from pricing_service.models import Price, Quote, QuoteItem
from pricing_service.schemas import (
    Priority,
    QuoteFigures,
    QuoteItemInput,
    QuoteOut,
    QuoteRequest,
    UpstreamDepot,
)
from pricing_service.service.money import LinePrice, QuoteAmounts, compute_quote, distance_decimal
from pricing_service.service.prices import CurrentPrices, current_prices

QUOTES_CREATED = business_counter(
    "flow_pricing_quotes_created_total",
    "Quotes stored, by source and priority",
    ("source", "priority"),
)
QUOTES_PRUNED = business_counter(
    "flow_pricing_quotes_pruned_total", "Stored quotes deleted after their retention"
)


@dataclass(frozen=True, slots=True)
class QuoteSource:
    """Who asked for a quote: a user (api, compare) or a service (internal)."""

    kind: str
    user_id: uuid.UUID | None = None
    org_id: uuid.UUID | None = None


# --- pricing a quote ----------------------------------------------------------------------


def build_quote(
    *,
    vendor_id: uuid.UUID,
    depot_id: uuid.UUID,
    items: Sequence[QuoteItemInput],
    prices: CurrentPrices,
    distance_km: Decimal,
    priority: Priority,
    delivery_lat: float,
    delivery_lon: float,
    settings: Settings,
    source: QuoteSource,
) -> Quote:
    """The priced quote, not added to the session: only a caller that stores it does."""
    rows = _price_rows(vendor_id, items, prices)
    currency = _one_currency(vendor_id, rows)
    amounts = compute_quote(
        [
            LinePrice(
                quantity=item.quantity,
                unit_price=price.unit_price,
                delivery_fee_per_km=price.delivery_fee_per_km,
                min_delivery_fee=price.min_delivery_fee,
                emergency_surcharge_pct=price.emergency_surcharge_pct,
                deposit_per_unit=price.deposit_per_cylinder,
            )
            for item, (price, _) in zip(items, rows, strict=True)
        ],
        distance_km=distance_km,
        priority=priority,
        tax_rate=settings.tax_rate,
    )
    now = utcnow()
    return Quote(
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
        deposit_total=amounts.deposit_total,
        currency=currency,
        source=source.kind,
        requested_by=source.user_id,
        requested_by_org=source.org_id,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.quote_ttl_seconds),
        items=_quote_items(items, rows, amounts),
    )


def _price_rows(
    vendor_id: uuid.UUID, items: Sequence[QuoteItemInput], prices: CurrentPrices
) -> list[tuple[Price, uuid.UUID]]:
    """The vendor's current price (and its history version) of each line, in line order."""
    missing = sorted({str(i.product_id) for i in items if (vendor_id, i.product_id) not in prices})
    if missing:
        raise NoPrice(
            f"Vendor {vendor_id} has no price for product(s) {', '.join(missing)}.",
            extra={"product_ids": missing},
        )
    return [prices[(vendor_id, item.product_id)] for item in items]


def _one_currency(vendor_id: uuid.UUID, rows: Sequence[tuple[Price, uuid.UUID]]) -> str:
    currencies = sorted({price.currency for price, _ in rows})
    if len(currencies) > 1:
        raise MixedCurrency(
            f"Vendor {vendor_id} prices these products in {', '.join(currencies)}; "
            "quote them separately."
        )
    return currencies[0]


def _quote_items(
    items: Sequence[QuoteItemInput],
    rows: Sequence[tuple[Price, uuid.UUID]],
    amounts: QuoteAmounts,
) -> list[QuoteItem]:
    return [
        QuoteItem(
            line_no=line_no,
            product_id=item.product_id,
            quantity=item.quantity,
            # Copied, not referenced: a later price change never alters this quote.
            unit_price=price.unit_price,
            line_total=line_total,
            deposit_per_unit=price.deposit_per_cylinder,
            price_history_id=history_id,
        )
        for line_no, (item, (price, history_id), line_total) in enumerate(
            zip(items, rows, amounts.line_totals, strict=True), start=1
        )
    ]


# --- storing and reading quotes -----------------------------------------------------------


async def create_quote(
    session: AsyncSession,
    inventory: InventoryClient,
    location: LocationClient,
    settings: Settings,
    request: QuoteRequest,
    source: QuoteSource,
) -> Quote:
    depot = await _quotable_depot(inventory, request)
    distance_km = await _delivery_distance(location, settings, depot, request)
    prices = await current_prices(
        session, [request.vendor_id], [item.product_id for item in request.items]
    )
    quote = build_quote(
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


async def _quotable_depot(inventory: InventoryClient, request: QuoteRequest) -> UpstreamDepot:
    """The requested depot, when it is the vendor's and the vendor may be quoted."""
    depot = await inventory.get_depot(request.depot_id)
    if depot.vendor_id != request.vendor_id:
        raise DepotNotFound(
            f"Depot {request.depot_id} is not a depot of vendor {request.vendor_id}."
        )
    if not depot.vendor_active:
        raise VendorUnavailable(
            f"Vendor {request.vendor_id} is not verified or is suspended and cannot be quoted."
        )
    return depot


async def _delivery_distance(
    location: LocationClient, settings: Settings, depot: UpstreamDepot, request: QuoteRequest
) -> Decimal:
    """The route distance from the depot, refused beyond its delivery range (if enforced)."""
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
    return distance_km


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


# --- answers ------------------------------------------------------------------------------


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
                "deposit_per_unit": item.deposit_per_unit,
            }
            for item in quote.items
        ],
        "subtotal": quote.subtotal,
        "delivery_fee": quote.delivery_fee,
        "surcharge": quote.surcharge,
        "tax_rate": quote.tax_rate,
        "tax": quote.tax,
        "total": quote.total,
        "deposit_total": quote.deposit_total,
        "currency": quote.currency,
    }
