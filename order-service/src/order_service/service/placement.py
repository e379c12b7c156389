"""Placing an order: a saga over inventory-, pricing- and (card orders) payment-service.

    claim Idempotency-Key -> count the units against the hospital's allocation caps
    -> resolve the destination -> reserve stock (inventory)
    -> quote (pricing) -> card orders: hand the card token to payment-service
    -> persist the order, its lines and `order.placed` (outbox)
    -> store the idempotent answer -> COMMIT

The card token goes over payment-service's internal API, never into the outbox (whose rows
are kept) or an event (which every consumer reads). It is handed over last before the
order is written, and before the COMMIT that lets the relay publish order.placed: so
payment-service holds the token whenever order.placed reaches it, and with payment-service
down the request is a 503 that leaves no order and gives the hold back. A placement that
fails after the hand-over (the COMMIT itself) leaves only an unused token there, which
payment-service prunes; no order.placed ever names that order.

Every failure after the reservation gives the hold back: a failing step
releases it on the spot, and from the moment the order is built the unit of
work releases it if the transaction does not commit (the COMMIT included).
No order row exists without a hold. A hold that cannot be given back on the
spot (inventory-service unreachable just then) is recorded once the
transaction has ended and released later by the order sweeper; only a crash
between the two leaves it to the hold's own TTL.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, Protocol

import structlog

from flow_shared.auth import Principal
from flow_shared.clock import utcnow
from flow_shared.http import UpstreamUnavailable
from flow_shared.idempotency import IdempotentAnswer, answer_once
from flow_shared.metrics import business_counter
from flow_shared.unit_of_work import UnitOfWork
from flow_shared.upstream import BadUpstreamResponse
from order_service.clients import (
    InventoryClient,
    LocationClient,
    PricingClient,
    Quote,
    Reservation,
    StockLine,
    Upstreams,
)
from order_service.config import Settings
from order_service.errors import DepotOrProductNotFound
from order_service.models import (
    Order,
    OrderItem,
    OrderStatus,
    ReservationStatus,
    idempotency_keys,
)
from order_service.schemas import DeliveryPoint, OrderCreate, OrderOut, Priority
from order_service.service import allocation, shortages
from order_service.service.holds import (
    give_back_later,
    release_hold,
    reserve_request,
)
from order_service.state import apply_transition

CENT = Decimal("0.01")
# A quote this close to its expiry is not reused: ask for a fresh one.
QUOTE_REUSE_MARGIN = timedelta(seconds=30)

ORDERS_PLACED = business_counter(
    "flow_orders_placed_total", "Orders placed, by priority and kind.", ("priority", "kind")
)

log = structlog.get_logger("order_service.placement")


class Orderer(Protocol):
    """Who an order (or SOS) is for and by: a hospital user's Principal, or an
    ActingHospital when nobody is there (`user_id` None: Flow itself, auto-reorder)."""

    @property
    def org_id(self) -> uuid.UUID: ...

    @property
    def user_id(self) -> uuid.UUID | None: ...


@dataclass(frozen=True, slots=True)
class ActingHospital:
    """A hospital acted for without a request of its own: the user who opened an SOS when
    a vendor accepts it, or nobody (None) when Flow places an order itself."""

    org_id: uuid.UUID
    user_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class Destination:
    lat: float
    lon: float
    address: str | None
    site_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    vendor_id: uuid.UUID
    depot_id: uuid.UUID
    destination: Destination
    items: Sequence[StockLine]
    priority: Priority
    payment_method: str
    notes: str | None
    # Handed to payment-service before the order is committed; never stored in this schema.
    card_token: str | None = None
    # Inside an active shortage for one of its products' categories: the unconfirmed hold
    # lasts at most SHORTAGE_HOLD_MINUTES.
    in_shortage: bool = False
    # The SOS request this order fulfils (service/sos.py).
    sos_id: uuid.UUID | None = None


async def resolve_destination(
    location: LocationClient,
    hospital_org_id: uuid.UUID,
    *,
    site_id: uuid.UUID | None,
    delivery: DeliveryPoint | None,
) -> Destination:
    if site_id is not None:
        site = await location.get_site(site_id, org_id=hospital_org_id)
        return Destination(lat=site.lat, lon=site.lon, address=site.address, site_id=site.id)
    assert delivery is not None  # the request model requires one of the two
    return Destination(lat=delivery.lat, lon=delivery.lon, address=delivery.address, site_id=None)


async def create_order(
    uow: UnitOfWork,
    upstreams: Upstreams,
    settings: Settings,
    hospital: Principal,
    body: OrderCreate,
    *,
    idempotency_key: str | None,
) -> IdempotentAnswer:
    async def produce() -> dict[str, Any]:
        destination = await resolve_destination(
            upstreams.location, hospital.org_id, site_id=body.site_id, delivery=body.delivery
        )
        wanted = allocation.units_by_product((i.product_id, i.quantity) for i in body.items)
        shortage = await shortages.scope_for(
            uow.session,
            upstreams.inventory,
            lat=destination.lat,
            lon=destination.lon,
            product_ids=list(wanted),
            now=utcnow(),
        )
        shortages.check_priority(shortage, body.priority)
        # Before any stock is held: an order over the cap leaves nothing behind.
        await allocation.take(uow.session, settings, hospital.org_id, wanted, shortage=shortage)
        order = await place(
            uow,
            upstreams,
            settings,
            hospital,
            PlacementRequest(
                vendor_id=body.vendor_id,
                depot_id=body.depot_id,
                destination=destination,
                items=[StockLine(product_id=i.product_id, quantity=i.quantity) for i in body.items],
                priority=body.priority,
                payment_method=body.payment_method,
                notes=body.notes,
                card_token=body.card_token,
                in_shortage=shortage.applies,
            ),
        )
        ORDERS_PLACED.labels(body.priority, "standard").inc()
        return OrderOut.of(order).model_dump(mode="json")

    return await answer_once(
        uow.session,
        idempotency_keys,
        scope=f"orders.create:{hospital.org_id}",
        key=idempotency_key,
        request_body=body.model_dump(mode="json"),
        status_code=201,
        produce=produce,
    )


async def place(
    uow: UnitOfWork,
    upstreams: Upstreams,
    settings: Settings,
    hospital: Orderer,
    request: PlacementRequest,
    *,
    quote: Quote | None = None,
) -> Order:
    """Reserve, quote and persist one order; on failure nothing is left held.

    `quote` may be one already obtained for this depot and these items (a direct
    order's tie-break); it is used if it is not about to expire.
    """
    order_id = uuid.uuid4()
    window = timedelta(seconds=settings.confirm_window_seconds(request.priority))
    if request.in_shortage:
        window = min(window, timedelta(minutes=settings.shortage_hold_minutes))
    ttl_seconds = math.ceil(window.total_seconds()) + settings.reservation_hold_margin_seconds
    hold = _Hold(uow, upstreams.inventory, order_id, request, ttl_seconds)
    reservation = await hold.reserve()
    try:
        if reservation.vendor_id != request.vendor_id or reservation.depot_id != request.depot_id:
            raise DepotOrProductNotFound("This depot does not belong to that vendor.")
        quote = await _current_quote(upstreams.pricing, request, reusable=quote)
        _check_quote(quote, request)
        if request.card_token is not None:
            await upstreams.payment.hand_over_card_token(order_id, request.card_token)
        now = utcnow()
        order = _new_order(order_id, hospital, request, reservation, quote, now, window)
        uow.session.add(order)
        await apply_transition(
            uow.session,
            order,
            OrderStatus.PLACED,
            actor_id=hospital.user_id,
            at=now,
        )
    except BaseException:
        await hold.give_back(reservation.reservation_id, cause="placement")
        raise
    # From here on only the idempotency record and the COMMIT can fail.
    uow.on_rollback(partial(hold.give_back, reservation.reservation_id, cause="commit"))
    return order


class _Hold:
    """The stock hold of one placement attempt, and how to give it back."""

    def __init__(
        self,
        uow: UnitOfWork,
        inventory: InventoryClient,
        order_id: uuid.UUID,
        request: PlacementRequest,
        ttl_seconds: int,
    ) -> None:
        self.uow = uow
        self.inventory = inventory
        self.order_id = order_id
        self.request = request
        self.ttl_seconds = ttl_seconds

    async def reserve(self) -> Reservation:
        reserve = partial(
            self.inventory.reserve,
            order_id=self.order_id,
            depot_id=self.request.depot_id,
            items=self.request.items,
            ttl_seconds=self.ttl_seconds,
            priority=self.request.priority,
        )
        try:
            return await reserve()
        except UpstreamUnavailable:
            # A timeout may come after inventory-service acted. Reservations are idempotent
            # on order_id, so asking again finds the hold if there is one, and it goes back.
            # (An open breaker raises CircuitOpen instead: then nothing was sent.)
            try:
                found = await reserve()
            except Exception:
                self._remember(None)
            else:
                await self.give_back(found.reservation_id, cause="unknown-outcome")
            raise

    async def give_back(self, reservation_id: uuid.UUID, *, cause: str) -> None:
        if await release_hold(self.inventory, reservation_id, cause=cause) is None:
            self._remember(reservation_id)

    def _remember(self, reservation_id: uuid.UUID | None) -> None:
        give_back_later(
            self.uow,
            order_id=self.order_id,
            reservation_id=reservation_id,
            request=reserve_request(
                self.request.depot_id,
                self.request.items,
                self.ttl_seconds,
                self.request.priority,
            ),
            ttl_seconds=self.ttl_seconds,
        )


async def _current_quote(
    pricing: PricingClient, request: PlacementRequest, *, reusable: Quote | None
) -> Quote:
    if reusable is not None and reusable.expires_at > utcnow() + QUOTE_REUSE_MARGIN:
        return reusable
    ask = partial(
        pricing.quote,
        vendor_id=request.vendor_id,
        depot_id=request.depot_id,
        items=request.items,
        lat=request.destination.lat,
        lon=request.destination.lon,
        priority=request.priority,
    )
    quote = await ask()
    if quote.expires_at <= utcnow():
        # An order is never placed on an expired quote: ask once more.
        quote = await ask()
        if quote.expires_at <= utcnow():
            raise BadUpstreamResponse("pricing-service answered an already expired quote.")
    return quote


def _is_cents(amount: Decimal) -> bool:
    return amount >= 0 and amount == amount.quantize(CENT)


def _check_quote(quote: Quote, request: PlacementRequest) -> None:
    """The order stores the quote as it is, so it must be for this order and add up."""
    asked = [(line.product_id, line.quantity) for line in request.items]
    quoted = [(line.product_id, line.quantity) for line in quote.items]
    amounts = [quote.subtotal, quote.delivery_fee, quote.surcharge, quote.tax, quote.total]
    consistent = (
        quote.vendor_id == request.vendor_id
        and quote.depot_id == request.depot_id
        and quote.priority == request.priority
        and quoted == asked
        and all(_is_cents(amount) for amount in amounts)
        and all(_is_cents(line.line_total) and line.unit_price >= 0 for line in quote.items)
        and quote.subtotal == sum((line.line_total for line in quote.items), Decimal(0))
        and quote.total == quote.subtotal + quote.delivery_fee + quote.surcharge + quote.tax
        and _is_cents(quote.deposit_total)
        and all(_is_cents(line.deposit_per_unit) for line in quote.items)
        and quote.deposit_total
        == sum((line.deposit_per_unit * line.quantity for line in quote.items), Decimal(0))
        and len(quote.currency) == 3
        and quote.currency.isalpha()
        and quote.currency.isupper()
    )
    if not consistent:
        log.error("inconsistent_quote", quote_id=str(quote.quote_id))
        raise BadUpstreamResponse("pricing-service answered a quote that does not fit the order.")


def _new_order(
    order_id: uuid.UUID,
    hospital: Orderer,
    request: PlacementRequest,
    reservation: Reservation,
    quote: Quote,
    now: datetime,
    window: timedelta,
) -> Order:
    destination = request.destination
    return Order(
        id=order_id,
        hospital_org_id=hospital.org_id,
        placed_by=hospital.user_id,
        vendor_id=request.vendor_id,
        depot_id=request.depot_id,
        site_id=destination.site_id,
        delivery_lat=destination.lat,
        delivery_lon=destination.lon,
        delivery_address=destination.address,
        priority=request.priority,
        payment_method=request.payment_method,
        status_history=[],
        reservation_id=reservation.reservation_id,
        reservation_status=ReservationStatus.HELD,
        quote_id=quote.quote_id,
        currency=quote.currency,
        subtotal=quote.subtotal,
        delivery_fee=quote.delivery_fee,
        surcharge=quote.surcharge,
        tax=quote.tax,
        total=quote.total,
        deposit_total=quote.deposit_total,
        cylinders_tracked=False,
        distance_km=quote.distance_km,
        notes=request.notes,
        sos_id=request.sos_id,
        expires_at=now + window,
        created_at=now,
        updated_at=now,
        items=[
            OrderItem(
                line_no=number,
                product_id=line.product_id,
                quantity=line.quantity,
                unit_price=line.unit_price,
                line_total=line.line_total,
                deposit_per_unit=line.deposit_per_unit,
            )
            for number, line in enumerate(quote.items, start=1)
        ],
    )
