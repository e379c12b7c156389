"""SOS broadcast: one request reaches the nearest `ring_size` vendors with stock at once.

    open:     count the quantity against the hospital's cap (allocation.take) -> ring 1:
              the candidates of a direct order (direct.find_candidates), best ETA first,
              one depot per vendor -> sos.opened + sos.request, in one transaction
              (`start`; auto-reorder opens its SOS through it too, with no user).
    accept:   one conditional UPDATE ... WHERE status = 'open' RETURNING decides the
              winner; in the same transaction the stock is reserved (emergency), the order
              placed and confirmed with the vendor's ETA (placement.place + apply_transition,
              so order.placed/order.confirmed are the normal ones). Short stock rolls all
              of it back: the SOS stays open. Losers wait on the row lock and then find the
              SOS fulfilled: 409 sos-closed.
    decline:  recorded; the last open offer of the ring declined opens the next ring (when
              location- or inventory-service cannot answer, the decline still counts and
              the ring is left due for the sweeper, which opens the next one).
    time-out: the SOS sweeper claims open requests whose ring is past `ring_expires_at`
              (FOR UPDATE SKIP LOCKED) and opens the next ring in that transaction, which
              also moves `ring_expires_at`: each ring escalates once, across processes and
              restarts. No candidate left in range: `unfilled`.

The allocation count taken at open stays while the SOS is open; when it becomes an order
the count simply stays (the order's end gives it back, state.apply_transition): no double
count and no gap. Cancelled or unfilled SOS give it back in that transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import ColumnElement, Select, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.auth import Principal
from flow_shared.clock import Clock, utcnow
from flow_shared.correlation import new_correlation_id, set_correlation_id
from flow_shared.db import Database
from flow_shared.http import UpstreamUnavailable
from flow_shared.idempotency import IdempotentAnswer, answer_once
from flow_shared.metrics import business_counter
from flow_shared.pagination import Page, PageParams, fetch_page
from flow_shared.resilience import CircuitOpen
from flow_shared.unit_of_work import UnitOfWork, unit_of_work
from flow_shared.visibility import scoped_to
from order_service import events
from order_service.clients import StockLine, Upstreams
from order_service.config import Settings
from order_service.errors import NoSupplierInRange, SosClosed, SosNotFound, SosRingClosed
from order_service.models import (
    Order,
    OrderStatus,
    SosOffer,
    SosRequest,
    SosRing,
    SosStatus,
    idempotency_keys,
)
from order_service.schemas import OrderOut, Priority, SosAccept, SosCreate, SosOut
from order_service.service import allocation, shortages
from order_service.service.direct import Candidate, by_eta, find_candidates
from order_service.service.placement import (
    ORDERS_PLACED,
    ActingHospital,
    Destination,
    Orderer,
    PlacementRequest,
    place,
    resolve_destination,
)
from order_service.state import apply_transition

SOS_PRIORITY: Priority = "emergency"

SOS_OUTCOMES = business_counter(
    "flow_sos_outcomes_total", "SOS requests that ended, by how.", ("status",)
)
SOS_ESCALATIONS = business_counter(
    "flow_sos_escalations_total", "SOS rings that escalated, by why.", ("reason",)
)

log = structlog.get_logger("order_service.sos")


def _destination(sos: SosRequest) -> Destination:
    return Destination(
        lat=sos.delivery_lat,
        lon=sos.delivery_lon,
        address=sos.delivery_address,
        site_id=sos.site_id,
    )


async def _next_ring(
    upstreams: Upstreams,
    settings: Settings,
    sos: SosRequest,
    destination: Destination,
    *,
    offered: set[uuid.UUID],
) -> list[Candidate]:
    """The next `ring_size` vendors not yet offered: best ETA first, one depot each.

    Asked afresh at every ring: stock changes while an SOS waits.
    """
    candidates = await find_candidates(
        upstreams,
        destination,
        product_id=sos.product_id,
        quantity=sos.quantity,
        priority=SOS_PRIORITY,
        radius_km=sos.max_distance_km,
        limit=settings.sos_max_candidates,
    )
    ring: list[Candidate] = []
    seen = set(offered)
    for candidate in by_eta(candidates):
        if candidate.stock.vendor_id in seen:
            continue
        seen.add(candidate.stock.vendor_id)
        ring.append(candidate)
        if len(ring) == sos.ring_size:
            break
    return ring


def _add_ring(sos: SosRequest, number: int, ring: Sequence[Candidate], now: datetime) -> SosRing:
    expires_at = now + timedelta(seconds=sos.ring_timeout_seconds)
    opened = SosRing(number=number, opened_at=now, expires_at=expires_at)
    sos.rings.append(opened)
    sos.offers.extend(
        SosOffer(
            vendor_id=c.stock.vendor_id,
            ring_number=number,
            position=position,
            depot_id=c.stock.depot_id,
            distance_km=c.distance_km,
            eta_min=c.eta_min,
        )
        for position, c in enumerate(ring, start=1)
    )
    sos.current_ring = number
    sos.ring_expires_at = expires_at
    sos.updated_at = now
    return opened


async def _emit_request(session: AsyncSession, sos: SosRequest, ring: SosRing) -> None:
    await events.sos_event(
        session,
        "sos.request",
        {
            "sos_id": str(sos.id),
            "hospital_org_id": str(sos.hospital_org_id),
            "product_id": str(sos.product_id),
            "quantity": sos.quantity,
            "delivery": events.sos_delivery(sos),
            "ring_number": ring.number,
            "expires_at": events.rfc3339(ring.expires_at),
            "offers": events.sos_offers_data(
                [o for o in sos.offers if o.ring_number == ring.number]
            ),
        },
    )


def _current_ring(sos: SosRequest) -> SosRing | None:
    return next((r for r in sos.rings if r.number == sos.current_ring), None)


async def _close(
    session: AsyncSession,
    sos: SosRequest,
    status: SosStatus,
    *,
    now: datetime,
    ring_reason: str,
    winner: uuid.UUID | None = None,
) -> None:
    """The SOS leaves `open`; every vendor offered it (the winner aside) hears sos.closed."""
    sos.status = status
    sos.closed_reason = status.value
    sos.ring_expires_at = None
    sos.updated_at = now
    ring = _current_ring(sos)
    if ring is not None and ring.closed_reason is None:
        ring.closed_reason = ring_reason
    if status is not SosStatus.FULFILLED:
        # The order's end gives a fulfilled SOS's units back; otherwise they go back now.
        await allocation.give_back(session, sos.hospital_org_id, {sos.product_id: sos.quantity})
    await events.sos_event(
        session,
        "sos.closed",
        {
            "sos_id": str(sos.id),
            "hospital_org_id": str(sos.hospital_org_id),
            "vendor_ids": [str(o.vendor_id) for o in sos.offers if o.vendor_id != winner],
            "reason": status.value,
        },
    )
    SOS_OUTCOMES.labels(status.value).inc()


async def open_sos(
    uow: UnitOfWork,
    upstreams: Upstreams,
    settings: Settings,
    hospital: Principal,
    body: SosCreate,
    *,
    idempotency_key: str | None,
) -> IdempotentAnswer:
    async def produce() -> dict[str, Any]:
        return SosOut.of(await start(uow, upstreams, settings, hospital, body)).model_dump(
            mode="json"
        )

    return await answer_once(
        uow.session,
        idempotency_keys,
        scope=f"sos.create:{hospital.org_id}",
        key=idempotency_key,
        request_body=body.model_dump(mode="json"),
        status_code=201,
        produce=produce,
    )


async def start(
    uow: UnitOfWork,
    upstreams: Upstreams,
    settings: Settings,
    hospital: Orderer,
    body: SosCreate,
) -> SosRequest:
    """Open the SOS with its ring 1 (the caller's unit of work commits it)."""
    session = uow.session
    now = utcnow()
    destination = await resolve_destination(
        upstreams.location, hospital.org_id, site_id=body.site_id, delivery=body.delivery
    )
    shortage = await shortages.scope_for(
        session,
        upstreams.inventory,
        lat=destination.lat,
        lon=destination.lon,
        product_ids=[body.product_id],
        now=now,
    )
    # Counted while the SOS is open; over the cap nothing is created.
    await allocation.take(
        session, settings, hospital.org_id, {body.product_id: body.quantity}, shortage=shortage
    )
    sos = SosRequest(
        id=uuid.uuid4(),
        hospital_org_id=hospital.org_id,
        created_by=hospital.user_id,
        product_id=body.product_id,
        quantity=body.quantity,
        site_id=destination.site_id,
        delivery_lat=destination.lat,
        delivery_lon=destination.lon,
        delivery_address=destination.address,
        max_distance_km=body.max_distance_km,
        ring_size=body.ring_size,
        ring_timeout_seconds=body.ring_timeout_seconds,
        payment_method=body.payment_method,
        notes=body.notes,
        status=SosStatus.OPEN,
        current_ring=0,
        created_at=now,
        updated_at=now,
        rings=[],
        offers=[],
    )
    ring = await _next_ring(upstreams, settings, sos, destination, offered=set())
    if not ring:
        raise NoSupplierInRange(
            f"No verified vendor within {body.max_distance_km:g} km can deliver "
            f"{body.quantity} of this product now.",
            extra={"candidates_considered": 0},
        )
    first = _add_ring(sos, 1, ring, now)
    session.add(sos)
    if body.card_token is not None:
        # Before the COMMIT, as for a card order: payment-service down refuses it whole.
        await upstreams.payment.hand_over_sos_card_token(sos.id, body.card_token)
    await events.sos_event(
        session,
        "sos.opened",
        {
            "sos_id": str(sos.id),
            "hospital_org_id": str(sos.hospital_org_id),
            "product_id": str(sos.product_id),
            "quantity": sos.quantity,
            "delivery": events.sos_delivery(sos),
            "ring_size": sos.ring_size,
            "max_distance_km": sos.max_distance_km,
            "created_at": events.rfc3339(now),
        },
    )
    await _emit_request(session, sos, first)
    log.info("sos_opened", sos_id=str(sos.id), ring_vendors=len(ring))
    return sos


async def _lock(
    session: AsyncSession, sos_id: uuid.UUID, *, hospital_org_id: uuid.UUID | None = None
) -> SosRequest | None:
    statement = select(SosRequest).where(SosRequest.id == sos_id)
    if hospital_org_id is not None:
        statement = statement.where(SosRequest.hospital_org_id == hospital_org_id)
    found: SosRequest | None = await session.scalar(
        statement.with_for_update().execution_options(populate_existing=True)
    )
    return found


async def escalate(
    session: AsyncSession,
    upstreams: Upstreams,
    settings: Settings,
    sos: SosRequest,
    *,
    reason: str,
    now: datetime,
) -> None:
    """Close the current ring (the caller holds the SOS's row lock) and open the next one,
    or make the SOS unfilled when nobody is left in range.

    The next ring is looked up first: when that fails (UpstreamUnavailable) nothing here
    has changed the SOS."""
    ring_candidates = await _next_ring(
        upstreams, settings, sos, _destination(sos), offered={o.vendor_id for o in sos.offers}
    )
    ring = _current_ring(sos)
    if ring is not None:
        ring.closed_reason = reason
    SOS_ESCALATIONS.labels(reason).inc()
    if not ring_candidates:
        await _close(session, sos, SosStatus.UNFILLED, now=now, ring_reason=reason)
        await events.sos_event(
            session,
            "sos.unfilled",
            {
                "sos_id": str(sos.id),
                "hospital_org_id": str(sos.hospital_org_id),
                "product_id": str(sos.product_id),
                "quantity": sos.quantity,
                "rings_tried": sos.current_ring,
            },
        )
        log.warning("sos_unfilled", sos_id=str(sos.id), rings_tried=sos.current_ring)
        return
    from_ring = sos.current_ring
    opened = _add_ring(sos, from_ring + 1, ring_candidates, now)
    await events.sos_event(
        session,
        "sos.escalated",
        {
            "sos_id": str(sos.id),
            "hospital_org_id": str(sos.hospital_org_id),
            "from_ring": from_ring,
            "to_ring": opened.number,
            "reason": reason,
        },
    )
    await _emit_request(session, sos, opened)
    log.info("sos_escalated", sos_id=str(sos.id), to_ring=opened.number, reason=reason)


def _hospital_of(sos: SosRequest) -> ActingHospital:
    """Who opened the SOS (a hospital user, or Flow itself): the order is placed in its name."""
    return ActingHospital(org_id=sos.hospital_org_id, user_id=sos.created_by)


async def accept(
    uow: UnitOfWork,
    upstreams: Upstreams,
    settings: Settings,
    vendor: Principal,
    sos_id: uuid.UUID,
    body: SosAccept,
) -> tuple[SosRequest, Order]:
    session = uow.session
    # Offers are never removed: whether this vendor was offered it needs no lock.
    offered = await session.scalar(
        select(SosOffer.ring_number).where(
            SosOffer.sos_id == sos_id, SosOffer.vendor_id == vendor.org_id
        )
    )
    if offered is None:
        raise SosNotFound("No SOS request with this id is visible to you.")
    now = utcnow()
    # The first acceptance wins here; the others wait on this row and then find it taken.
    ring_number = await session.scalar(
        update(SosRequest)
        .where(SosRequest.id == sos_id, SosRequest.status == SosStatus.OPEN)
        .values(status=SosStatus.FULFILLED, updated_at=now)
        .returning(SosRequest.current_ring)
        .execution_options(synchronize_session=False)
    )
    if ring_number is None:
        raise SosClosed("This SOS request is no longer open.")
    sos = await session.scalar(
        select(SosRequest).where(SosRequest.id == sos_id).execution_options(populate_existing=True)
    )
    assert sos is not None
    offer = next(o for o in sos.offers if o.vendor_id == vendor.org_id)
    if offer.ring_number != ring_number or offer.answer is not None:
        raise SosRingClosed("Your offer for this SOS is no longer open (its ring has closed).")
    order = await place(
        uow,
        upstreams,
        settings,
        _hospital_of(sos),
        PlacementRequest(
            vendor_id=vendor.org_id,
            depot_id=body.depot_id,
            destination=_destination(sos),
            items=[StockLine(product_id=sos.product_id, quantity=sos.quantity)],
            priority=SOS_PRIORITY,
            payment_method=sos.payment_method,
            notes=sos.notes,
            sos_id=sos.id,
        ),
    )
    # Confirmed at once: the hold lasts as a confirmed order's does.
    await upstreams.inventory.extend(
        order.reservation_id, ttl_seconds=settings.confirmed_hold_seconds
    )
    order.eta_minutes = body.eta_minutes
    # Stamped after placement, so the history reads placed, then confirmed.
    now = utcnow()
    await apply_transition(session, order, OrderStatus.CONFIRMED, actor_id=vendor.user_id, at=now)
    ORDERS_PLACED.labels(SOS_PRIORITY, "sos").inc()
    sos.order_id = order.id
    offer.answer = "accepted"
    offer.answered_at = now
    offer.answered_by = vendor.user_id
    await _close(
        session, sos, SosStatus.FULFILLED, now=now, ring_reason="accepted", winner=vendor.org_id
    )
    await events.sos_event(
        session,
        "sos.fulfilled",
        {
            "sos_id": str(sos.id),
            "hospital_org_id": str(sos.hospital_org_id),
            "order_id": str(order.id),
            "vendor_id": str(vendor.org_id),
            "depot_id": str(order.depot_id),
            "eta_minutes": body.eta_minutes,
        },
    )
    log.info("sos_fulfilled", sos_id=str(sos.id), order_id=str(order.id))
    return sos, order


async def decline(
    uow: UnitOfWork,
    upstreams: Upstreams,
    settings: Settings,
    vendor: Principal,
    sos_id: uuid.UUID,
    *,
    reason: str,
) -> SosRequest:
    session = uow.session
    sos = await _lock(session, sos_id)
    offer = next((o for o in sos.offers if o.vendor_id == vendor.org_id), None) if sos else None
    if sos is None or offer is None:
        raise SosNotFound("No SOS request with this id is visible to you.")
    if sos.status != SosStatus.OPEN:
        raise SosClosed("This SOS request is no longer open.")
    if offer.ring_number != sos.current_ring or offer.answer is not None:
        raise SosRingClosed("Your offer for this SOS is no longer open (its ring has closed).")
    now = utcnow()
    offer.answer = "declined"
    offer.reason = reason
    offer.answered_at = now
    offer.answered_by = vendor.user_id
    sos.updated_at = now
    if _ring_declined(sos):
        # Due now: if the next ring cannot be looked up here, the sweeper opens it.
        sos.ring_expires_at = now
        try:
            await escalate(session, upstreams, settings, sos, reason="declined", now=now)
        except (UpstreamUnavailable, CircuitOpen) as unavailable:
            log.warning("sos_escalation_deferred", sos_id=str(sos.id), detail=unavailable.detail)
    return sos


def _ring_declined(sos: SosRequest) -> bool:
    """Every offer of the current ring has been declined."""
    return all(o.answer == "declined" for o in sos.offers if o.ring_number == sos.current_ring)


async def cancel(uow: UnitOfWork, hospital: Principal, sos_id: uuid.UUID) -> SosRequest:
    session = uow.session
    sos = await _lock(session, sos_id, hospital_org_id=hospital.org_id)
    if sos is None:
        raise SosNotFound("No SOS request with this id is visible to you.")
    if sos.status != SosStatus.OPEN:
        raise SosClosed("This SOS request is no longer open.")
    now = utcnow()
    await _close(session, sos, SosStatus.CANCELLED, now=now, ring_reason="cancelled")
    await events.sos_event(
        session,
        "sos.cancelled",
        {
            "sos_id": str(sos.id),
            "hospital_org_id": str(sos.hospital_org_id),
            "cancelled_by": str(hospital.user_id),
        },
    )
    return sos


class SosSweeper:
    """Escalates rings past their `expires_at`; runs in every order-service process."""

    def __init__(
        self,
        database: Database,
        upstreams: Upstreams,
        settings: Settings,
        *,
        clock: Clock = utcnow,
    ) -> None:
        self.database = database
        self.upstreams = upstreams
        self.settings = settings
        self.clock = clock

    async def run_once(self, now: datetime | None = None) -> int:
        """One sweep at `now` (a test's moment), else at the sweeper's clock."""
        set_correlation_id(new_correlation_id())
        at = now or self.clock()
        escalated = 0
        for _ in range(self.settings.sos_sweep_batch_size):
            async with unit_of_work(self.database) as uow:
                # Claimed, escalated and moved on in one transaction: once per ring.
                due = await uow.session.scalar(
                    select(SosRequest)
                    .where(SosRequest.status == SosStatus.OPEN, SosRequest.ring_expires_at <= at)
                    .order_by(SosRequest.ring_expires_at)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                    .execution_options(populate_existing=True)
                )
                if due is not None:
                    # Declined to the last offer when a decline could not open the next ring.
                    reason = "declined" if _ring_declined(due) else "timed_out"
                    await escalate(
                        uow.session, self.upstreams, self.settings, due, reason=reason, now=at
                    )
            if due is None:
                break
            escalated += 1
        if escalated:
            log.info("sos_sweep", escalated=escalated)
        return escalated


# --- reading -------------------------------------------------------------------------------


def _visible(principal: Principal) -> Select[Any]:
    return scoped_to(
        select(SosRequest),
        principal,
        hospital=SosRequest.hospital_org_id,
        vendor=_offered_to,
        what="SOS requests",
    )


def _offered_to(vendor_id: uuid.UUID) -> ColumnElement[bool]:
    """A vendor sees the SOS requests that rang it (it holds an offer of them)."""
    return exists().where(SosOffer.sos_id == SosRequest.id, SosOffer.vendor_id == vendor_id)


def view(sos: SosRequest, principal: Principal) -> SosOut:
    """A vendor sees the SOS and its own offer only, never its competitors'."""
    vendor_id = principal.org_id if principal.org_kind == "vendor" else None
    if principal.is_platform_admin:
        vendor_id = None
    return SosOut.of(sos, vendor_id=vendor_id)


async def list_sos(
    session: AsyncSession, principal: Principal, *, status: SosStatus | None, params: PageParams
) -> Page[SosOut]:
    statement = _visible(principal)
    if status is not None:
        statement = statement.where(SosRequest.status == status)
    rows, total = await fetch_page(
        session, statement.order_by(SosRequest.created_at.desc(), SosRequest.id.desc()), params
    )
    return Page[SosOut].of([view(sos, principal) for sos in rows], params, total)


async def get_sos(session: AsyncSession, principal: Principal, sos_id: uuid.UUID) -> SosOut:
    sos: SosRequest | None = await session.scalar(
        _visible(principal).where(SosRequest.id == sos_id)
    )
    if sos is None:
        raise SosNotFound("No SOS request with this id is visible to you.")
    return view(sos, principal)


def accepted(sos: SosRequest, order: Order, principal: Principal) -> dict[str, Any]:
    return {
        "sos": view(sos, principal).model_dump(mode="json"),
        "order": OrderOut.of(order).model_dump(mode="json"),
    }
