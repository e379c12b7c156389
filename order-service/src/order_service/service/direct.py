"""Direct (emergency) orders: the nearest vendor that has the stock gets the order.

Candidates come from inventory-service's nearby search (only depots with at
least the quantity available, nearest first); location-service gives road
distance and ETA for all of them in one call. The order goes to the nearest;
ties go to the shorter ETA, then to the cheaper quote (priced only for ties).
If the chosen depot's stock is gone by the time it is reserved (another order
won the race), the next candidate is tried.
"""

from __future__ import annotations

import itertools
import math
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog

from flow_shared.auth import Principal
from flow_shared.clock import utcnow
from flow_shared.errors import ServiceUnavailable
from flow_shared.idempotency import IdempotentAnswer, answer_once
from flow_shared.unit_of_work import UnitOfWork
from flow_shared.upstream import BadUpstreamResponse
from order_service.clients import NearbyStock, Quote, StockLine, Upstreams
from order_service.config import Settings
from order_service.errors import (
    DepotOrProductNotFound,
    InsufficientStock,
    NoSupplierInRange,
    PriceUnavailable,
    QuoteRefused,
    ReservationRefused,
    VendorUnavailable,
)
from order_service.models import idempotency_keys
from order_service.schemas import DirectOrderCreate, OrderOut, Selection
from order_service.service import allocation, shortages
from order_service.service.placement import (
    ORDERS_PLACED,
    Destination,
    PlacementRequest,
    place,
    resolve_destination,
)

# The candidate cannot take this order, but the next one may.
_CANDIDATE_UNUSABLE = (
    InsufficientStock,
    VendorUnavailable,
    PriceUnavailable,
    QuoteRefused,
    ReservationRefused,
    DepotOrProductNotFound,
)

log = structlog.get_logger("order_service.direct")


@dataclass
class Candidate:
    stock: NearbyStock
    distance_km: float
    eta_min: int | None
    quote: Quote | None = None

    @property
    def rank(self) -> tuple[float, float]:
        return (self.distance_km, math.inf if self.eta_min is None else self.eta_min)

    @property
    def price(self) -> Decimal | None:
        return self.quote.total if self.quote is not None else None


async def create_direct_order(
    uow: UnitOfWork,
    upstreams: Upstreams,
    settings: Settings,
    hospital: Principal,
    body: DirectOrderCreate,
    *,
    idempotency_key: str | None,
) -> IdempotentAnswer:
    async def produce() -> dict[str, Any]:
        destination = await resolve_destination(
            upstreams.location, hospital.org_id, site_id=body.site_id, delivery=body.delivery
        )
        shortage = await shortages.scope_for(
            uow.session,
            upstreams.inventory,
            lat=destination.lat,
            lon=destination.lon,
            product_ids=[body.product_id],
            now=utcnow(),
        )
        shortages.check_priority(shortage, body.priority)
        # Emergencies are capped too; counted once, whichever candidate takes the order.
        await allocation.take(
            uow.session,
            settings,
            hospital.org_id,
            {body.product_id: body.quantity},
            shortage=shortage,
        )
        radius_km = body.max_distance_km or settings.direct_default_radius_km
        candidates = await find_candidates(
            upstreams,
            destination,
            product_id=body.product_id,
            quantity=body.quantity,
            priority=body.priority,
            radius_km=radius_km,
            limit=settings.direct_max_candidates,
        )
        line = StockLine(product_id=body.product_id, quantity=body.quantity)
        for _, group in itertools.groupby(candidates, key=lambda c: c.rank):
            for candidate in await _by_price(upstreams, destination, body, list(group), line):
                request = PlacementRequest(
                    vendor_id=candidate.stock.vendor_id,
                    depot_id=candidate.stock.depot_id,
                    destination=destination,
                    items=[line],
                    priority=body.priority,
                    payment_method=body.payment_method,
                    notes=body.notes,
                    in_shortage=shortage.applies,
                )
                try:
                    order = await place(
                        uow, upstreams, settings, hospital, request, quote=candidate.quote
                    )
                except _CANDIDATE_UNUSABLE as exc:
                    log.info(
                        "direct_candidate_skipped",
                        depot_id=str(candidate.stock.depot_id),
                        reason=exc.code,
                    )
                    continue
                ORDERS_PLACED.labels(body.priority, "direct").inc()
                selection = Selection(
                    vendor_id=candidate.stock.vendor_id,
                    depot_id=candidate.stock.depot_id,
                    distance_km=candidate.distance_km,
                    eta_min=candidate.eta_min,
                    candidates_considered=len(candidates),
                )
                return {
                    "order": OrderOut.of(order).model_dump(mode="json"),
                    "selection": selection.model_dump(mode="json"),
                }
        raise NoSupplierInRange(
            f"No verified vendor within {radius_km:g} km can deliver {body.quantity} of "
            "this product now.",
            extra={"candidates_considered": len(candidates)},
        )

    return await answer_once(
        uow.session,
        idempotency_keys,
        scope=f"orders.direct:{hospital.org_id}",
        key=idempotency_key,
        request_body=body.model_dump(mode="json"),
        status_code=201,
        produce=produce,
    )


async def find_candidates(
    upstreams: Upstreams,
    destination: Destination,
    *,
    product_id: uuid.UUID,
    quantity: int,
    priority: str,
    radius_km: float,
    limit: int,
) -> list[Candidate]:
    """Depots of verified vendors with enough stock in range, ranked by road distance then
    ETA (also the SOS rings' candidates, service/sos.py)."""
    stocks = await upstreams.inventory.nearby(
        lat=destination.lat,
        lon=destination.lon,
        radius_km=radius_km,
        product_id=product_id,
        min_quantity=quantity,
        page_size=limit,
    )
    # Never trust a filter we did not apply: only rows that can serve the whole quantity.
    stocks = [
        s
        for s in stocks
        if s.product_id == product_id and s.available >= quantity and s.distance_km <= radius_km
    ]
    if not stocks:
        return []
    try:
        routes = await upstreams.location.route_batch(
            to_lat=destination.lat,
            to_lon=destination.lon,
            origins=[(str(s.depot_id), s.lat, s.lon) for s in stocks],
            priority=priority,
        )
    except (ServiceUnavailable, BadUpstreamResponse) as exc:
        # An emergency must not wait for route estimates: rank by straight distance.
        log.warning("direct_routes_unavailable", error=exc.code)
        candidates = [Candidate(s, distance_km=s.distance_km, eta_min=None) for s in stocks]
    else:
        candidates = [
            Candidate(s, distance_km=route.distance_km, eta_min=round(route.duration_min))
            for s, route in zip(stocks, routes, strict=True)
        ]
    return sorted(candidates, key=lambda c: c.rank)


async def _by_price(
    upstreams: Upstreams,
    destination: Destination,
    body: DirectOrderCreate,
    tied: list[Candidate],
    line: StockLine,
) -> list[Candidate]:
    """Candidates equally near and fast, cheapest first (unpriceable ones last)."""
    if len(tied) < 2:
        return tied
    for candidate in tied:
        try:
            candidate.quote = await upstreams.pricing.quote(
                vendor_id=candidate.stock.vendor_id,
                depot_id=candidate.stock.depot_id,
                items=[line],
                lat=destination.lat,
                lon=destination.lon,
                priority=body.priority,
            )
        except _CANDIDATE_UNUSABLE:
            candidate.quote = None
    return sorted(tied, key=lambda c: (c.price is None, c.price or Decimal(0)))
