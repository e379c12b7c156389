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
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
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
from order_service.models import Order, idempotency_keys
from order_service.schemas import DeliveryPoint, DirectOrderCreate, OrderOut, Priority, Selection
from order_service.service import allocation, shortages
from order_service.service.placement import (
    ORDERS_PLACED,
    Destination,
    Orderer,
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
    async def nearest_then_cheapest(
        destination: Destination, line: StockLine, candidates: list[Candidate]
    ) -> AsyncIterator[Candidate]:
        for _, group in itertools.groupby(candidates, key=lambda c: c.rank):
            tied = list(group)
            for candidate in await _by_price(upstreams, destination, body.priority, tied, line):
                yield candidate

    async def produce() -> dict[str, Any]:
        wanted = OneProduct(
            site_id=body.site_id,
            delivery=body.delivery,
            product_id=body.product_id,
            quantity=body.quantity,
            priority=body.priority,
            payment_method=body.payment_method,
            notes=body.notes,
            radius_km=body.max_distance_km or settings.direct_default_radius_km,
        )
        placed = await place_one_product(
            uow, upstreams, settings, hospital, wanted, nearest_then_cheapest
        )
        ORDERS_PLACED.labels(body.priority, "direct").inc()
        selection = Selection(
            vendor_id=placed.chosen.stock.vendor_id,
            depot_id=placed.chosen.stock.depot_id,
            distance_km=placed.chosen.distance_km,
            eta_min=placed.chosen.eta_min,
            candidates_considered=placed.candidates_considered,
        )
        return {
            "order": OrderOut.of(placed.order).model_dump(mode="json"),
            "selection": selection.model_dump(mode="json"),
        }

    return await answer_once(
        uow.session,
        idempotency_keys,
        scope=f"orders.direct:{hospital.org_id}",
        key=idempotency_key,
        request_body=body.model_dump(mode="json"),
        status_code=201,
        produce=produce,
    )


@dataclass(frozen=True, slots=True)
class OneProduct:
    """An order of one product that names no depot: Flow picks one (direct orders,
    auto-reorder)."""

    site_id: uuid.UUID | None
    delivery: DeliveryPoint | None
    product_id: uuid.UUID
    quantity: int
    priority: Priority
    payment_method: str
    notes: str | None
    radius_km: float


@dataclass(frozen=True, slots=True)
class PlacedAtCandidate:
    order: Order
    chosen: Candidate
    candidates_considered: int


# The order in which candidates are tried, given the destination and the line.
Arrangement = Callable[
    [Destination, StockLine, list[Candidate]], Iterable[Candidate] | AsyncIterable[Candidate]
]


async def place_one_product(
    uow: UnitOfWork,
    upstreams: Upstreams,
    settings: Settings,
    hospital: Orderer,
    wanted: OneProduct,
    arrange: Arrangement,
) -> PlacedAtCandidate:
    """Place `wanted` at the first depot within its radius that can take it, in the order
    `arrange` gives; every rule of a placement applies (the site is the hospital's, the
    shortage pause, the cap, the emergency reserve). NoSupplierInRange when none can."""
    destination = await resolve_destination(
        upstreams.location, hospital.org_id, site_id=wanted.site_id, delivery=wanted.delivery
    )
    shortage = await shortages.scope_for(
        uow.session,
        upstreams.inventory,
        lat=destination.lat,
        lon=destination.lon,
        product_ids=[wanted.product_id],
        now=utcnow(),
    )
    shortages.check_priority(shortage, wanted.priority)
    # Emergencies are capped too; counted once, whichever candidate takes the order, and
    # over the cap nothing is held.
    await allocation.take(
        uow.session,
        settings,
        hospital.org_id,
        {wanted.product_id: wanted.quantity},
        shortage=shortage,
    )
    candidates = await find_candidates(
        upstreams,
        destination,
        product_id=wanted.product_id,
        quantity=wanted.quantity,
        priority=wanted.priority,
        radius_km=wanted.radius_km,
        limit=settings.direct_max_candidates,
    )
    line = StockLine(product_id=wanted.product_id, quantity=wanted.quantity)
    placed = await _place_with_first_able(
        uow,
        upstreams,
        settings,
        hospital,
        arrange(destination, line, candidates),
        lambda candidate: PlacementRequest(
            vendor_id=candidate.stock.vendor_id,
            depot_id=candidate.stock.depot_id,
            destination=destination,
            items=[line],
            priority=wanted.priority,
            payment_method=wanted.payment_method,
            notes=wanted.notes,
            in_shortage=shortage.applies,
        ),
    )
    if placed is None:
        raise NoSupplierInRange(
            f"No verified vendor within {wanted.radius_km:g} km can deliver "
            f"{wanted.quantity} of this product now.",
            extra={"candidates_considered": len(candidates)},
        )
    order, chosen = placed
    return PlacedAtCandidate(order, chosen, len(candidates))


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


def by_eta(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Best ETA first (unknown ETAs last), then the shorter road: the order in which an
    SOS rings vendors (service/sos.py) and auto-reorder tries depots (auto_reorder.py)."""
    return sorted(candidates, key=lambda c: (c.eta_min is None, c.eta_min or 0, c.distance_km))


async def _place_with_first_able(
    uow: UnitOfWork,
    upstreams: Upstreams,
    settings: Settings,
    hospital: Orderer,
    candidates: Iterable[Candidate] | AsyncIterable[Candidate],
    request_for: Callable[[Candidate], PlacementRequest],
) -> tuple[Order, Candidate] | None:
    """Place the order at the first candidate that can take it, in the given order: one
    whose stock went to another order meanwhile (or that cannot quote) is skipped.
    None when no candidate could."""
    async for candidate in _each(candidates):
        try:
            order = await place(
                uow, upstreams, settings, hospital, request_for(candidate), quote=candidate.quote
            )
        except _CANDIDATE_UNUSABLE as exc:
            log.info(
                "placement_candidate_skipped",
                depot_id=str(candidate.stock.depot_id),
                reason=exc.code,
            )
            continue
        return order, candidate
    return None


async def _each(
    candidates: Iterable[Candidate] | AsyncIterable[Candidate],
) -> AsyncIterator[Candidate]:
    if isinstance(candidates, AsyncIterable):
        async for candidate in candidates:
            yield candidate
    else:
        for candidate in candidates:
            yield candidate


async def _by_price(
    upstreams: Upstreams,
    destination: Destination,
    priority: str,
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
                priority=priority,
            )
        except _CANDIDATE_UNUSABLE:
            candidate.quote = None
    return sorted(tied, key=lambda c: (c.price is None, c.price or Decimal(0)))
