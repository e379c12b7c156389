"""Public pricing API: price lists, quotes and the vendor comparison."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from flow_shared.auth import CurrentPrincipal
from flow_shared.pagination import Pagination
from flow_shared.unit_of_work import DbSession
from flow_shared.validation import Latitude, Longitude
from pricing_service.deps import (
    AppSettings,
    HospitalUser,
    Inventory,
    Location,
    RedisClient,
    VendorUser,
)
from pricing_service.schemas import (
    MAX_QUANTITY,
    CompareOut,
    PriceInput,
    PriceOut,
    PricePage,
    Priority,
    QuoteOut,
    QuoteRequest,
)
from pricing_service.service import comparison, prices, quotes

router = APIRouter(prefix="/api/v1/pricing", tags=["pricing"])

MAX_COMPARE_RADIUS_KM = 200.0


@router.put(
    "/prices/{product_id}",
    responses={
        403: {"description": "Not a vendor"},
        422: {
            "description": "Invalid body, or a deposit_per_cylinder > 0 on a product that is"
            " not an oxygen_cylinder (`.../deposit-not-allowed`)"
        },
        502: {"description": "inventory-service answered outside its contract"},
        503: {"description": "A deposit was asked for and inventory-service is down"},
    },
)
async def set_price(
    product_id: uuid.UUID,
    body: PriceInput,
    vendor: VendorUser,
    session: DbSession,
    inventory: Inventory,
) -> PriceOut:
    """Set the calling vendor's price for a product. Existing quotes keep their prices.

    `deposit_per_cylinder` (default 0) is the refundable deposit per cylinder delivered;
    only an oxygen_cylinder product may carry one."""
    price = await prices.set_price(
        session,
        vendor_id=vendor.org_id,
        product_id=product_id,
        body=body,
        actor_id=vendor.user_id,
        inventory=inventory,
    )
    return PriceOut.model_validate(price, from_attributes=True)


@router.get("/vendors/{vendor_id}/prices")
async def list_vendor_prices(
    vendor_id: uuid.UUID, _user: CurrentPrincipal, session: DbSession, pagination: Pagination
) -> PricePage:
    rows, total = await prices.list_vendor_prices(session, vendor_id, pagination)
    return PricePage.of(
        [PriceOut.model_validate(row, from_attributes=True) for row in rows], pagination, total
    )


@router.get("/compare", response_model=CompareOut)
async def compare(
    _hospital: HospitalUser,
    session: DbSession,
    redis: RedisClient,
    inventory: Inventory,
    location: Location,
    settings: AppSettings,
    product_id: uuid.UUID,
    quantity: Annotated[int, Query(ge=1, le=MAX_QUANTITY)],
    lat: Latitude,
    lon: Longitude,
    radius_km: Annotated[float, Query(gt=0, le=MAX_COMPARE_RADIUS_KM)] = 25.0,
    priority: Priority = "routine",
) -> Response:
    """Vendors with the stock nearby, each priced as a quote: offers on fresh stock before
    `stale` ones (stock not updated for inventory's STALE_STOCK_HOURS), each cheapest total
    first.

    Nothing is stored: POST /quotes keeps a quote, and an order asks for its own.

    Served from a short cache (COMPARE_CACHE_SECONDS): stock shown may be that
    stale, but an order always re-reserves and re-quotes.
    """
    query = comparison.CompareQuery(
        product_id=product_id,
        quantity=quantity,
        lat=lat,
        lon=lon,
        radius_km=radius_km,
        priority=priority,
    )
    body = await comparison.compare(session, redis, inventory, location, settings, query)
    return Response(content=body, media_type="application/json")


@router.post("/quotes", status_code=status.HTTP_201_CREATED)
async def create_quote(
    body: QuoteRequest,
    principal: CurrentPrincipal,
    session: DbSession,
    inventory: Inventory,
    location: Location,
    settings: AppSettings,
) -> QuoteOut:
    source = quotes.QuoteSource(kind="api", user_id=principal.user_id, org_id=principal.org_id)
    quote = await quotes.create_quote(session, inventory, location, settings, body, source)
    return quotes.quote_out(quote)


@router.get("/quotes/{quote_id}")
async def get_quote(
    quote_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession
) -> QuoteOut:
    """A stored quote, for the organisation that asked for it, the quoted vendor or an admin."""
    return quotes.quote_out(await quotes.get_quote_for(session, quote_id, principal))
