"""/internal API for order-service and pricing-service (X-Service-Key is enforced by the
shared app).

POST /internal/reservations                       -> 201 ReservationOut (200 on a replay)
GET  /internal/reservations/{id}                  -> ReservationOut
POST /internal/reservations/{id}/extend           -> ReservationOut (expires_at moved on)
POST /internal/reservations/{id}/commit           -> {reservation_id, status: "committed"}
POST /internal/reservations/{id}/release          -> {reservation_id, status: "released"|"expired"}
GET  /internal/depots/vendors-within?lat&lon&radius_km -> {vendor_ids} (admin-service)
GET  /internal/depots/{depot_id}                  -> InternalDepotOut
GET  /internal/products?ids=a,b                   -> {items: [{id, category}]} (order-service,
                                                     and pricing-service for deposits)
GET  /internal/catalog/nearby?...                 -> the public nearby page
POST /internal/cylinders/dispatch                 -> {order_id, cylinders} (order-service;
                                                     named full serials -> in transit)
POST /internal/cylinders/deliver                  -> {order_id, delivered, returned}
                                                     (order-service; idempotent per order)
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from flow_shared.auth import accepts_callers
from flow_shared.clock import Now
from flow_shared.errors import UnprocessableEntity
from flow_shared.pagination import Page
from flow_shared.unit_of_work import DbSession
from flow_shared.validation import Latitude, Longitude, RadiusKm
from inventory_service.api import NearbyPage
from inventory_service.deps import CatalogWriteSession, SettingsDep
from inventory_service.schemas import (
    CylinderDeliver,
    CylinderDispatch,
    DeliverOut,
    DispatchOut,
    InternalDepotOut,
    NearbyItem,
    ReservationCreate,
    ReservationExtend,
    ReservationItemOut,
    ReservationOut,
    ReservationStatusOut,
    SerialProduct,
)
from inventory_service.service import area, cylinders, reservations, stock
from inventory_service.service.reservations import ReservationView

router = APIRouter(prefix="/internal", tags=["internal"])

# Reservations are order-service's; pricing reads depots; both search the catalog.
ORDERS = [accepts_callers("order-service")]
PRICING = [accepts_callers("pricing-service")]
SEARCHERS = [accepts_callers("order-service", "pricing-service")]
# admin-service asks who is inside a declared shortage's area.
ADMIN = [accepts_callers("admin-service")]

# Reservation movements name the caller as a service, not a user.
INTERNAL_ACTOR = "service:internal"


def _reservation(view: ReservationView) -> ReservationOut:
    return ReservationOut(
        reservation_id=view.id,
        order_id=view.order_id,
        depot_id=view.depot_id,
        vendor_id=view.vendor_id,
        status=view.status,
        expires_at=view.expires_at,
        items=[ReservationItemOut(product_id=p, quantity=q) for p, q in view.items.items()],
    )


@router.post(
    "/reservations",
    dependencies=ORDERS,
    status_code=201,
    responses={
        200: {"description": "A replay: this order's reservation already existed"},
        409: {
            "description": "Short stock (short_items; for a routine hold, what it may take"
            " above the emergency reserve), vendor unavailable, or mismatch"
        },
    },
)
async def create_reservation(
    body: ReservationCreate,
    response: Response,
    session: CatalogWriteSession,
    settings: SettingsDep,
) -> ReservationOut:
    view, created = await reservations.reserve(
        session,
        body,
        actor=INTERNAL_ACTOR,
        max_ttl_seconds=settings.reservation_max_ttl_seconds,
        emergency_reserve_pct=settings.emergency_reserve_pct,
    )
    if not created:
        response.status_code = 200
    return _reservation(view)


@router.get("/reservations/{reservation_id}", dependencies=ORDERS)
async def get_reservation(reservation_id: uuid.UUID, session: DbSession) -> ReservationOut:
    return _reservation(await reservations.get_reservation(session, reservation_id))


@router.post(
    "/reservations/{reservation_id}/extend",
    dependencies=ORDERS,
    responses={409: {"description": "The hold is no longer held (expired, released, committed)"}},
)
async def extend_reservation(
    reservation_id: uuid.UUID,
    body: ReservationExtend,
    # No stock changes, so the catalogue cache stays valid: a plain session.
    session: DbSession,
    settings: SettingsDep,
) -> ReservationOut:
    view = await reservations.extend_reservation(
        session,
        reservation_id,
        ttl_seconds=body.ttl_seconds,
        max_ttl_seconds=settings.reservation_max_ttl_seconds,
        actor=INTERNAL_ACTOR,
    )
    return _reservation(view)


@router.post("/reservations/{reservation_id}/commit", dependencies=ORDERS)
async def commit_reservation(
    reservation_id: uuid.UUID, session: CatalogWriteSession
) -> ReservationStatusOut:
    status = await reservations.commit_reservation(session, reservation_id, actor=INTERNAL_ACTOR)
    return ReservationStatusOut(reservation_id=reservation_id, status=status)


@router.post("/reservations/{reservation_id}/release", dependencies=ORDERS)
async def release_reservation(
    reservation_id: uuid.UUID, session: CatalogWriteSession
) -> ReservationStatusOut:
    status = await reservations.release_reservation(session, reservation_id, actor=INTERNAL_ACTOR)
    return ReservationStatusOut(reservation_id=reservation_id, status=status)


class VendorsWithinOut(BaseModel):
    vendor_ids: list[uuid.UUID]


class ProductCategoryOut(BaseModel):
    id: uuid.UUID
    category: str


class ProductCategoriesOut(BaseModel):
    items: list[ProductCategoryOut]


# Declared before /depots/{depot_id}, which would otherwise take "vendors-within" as an id.
@router.get("/depots/vendors-within", dependencies=ADMIN)
async def vendors_within(
    lat: Latitude,
    lon: Longitude,
    radius_km: RadiusKm,
    session: DbSession,
) -> VendorsWithinOut:
    """Vendor organisations with a depot within `radius_km` of the point."""
    ids = await area.vendors_within(session, lat=lat, lon=lon, radius_km=radius_km)
    return VendorsWithinOut(vendor_ids=ids)


# pricing-service: a cylinder deposit may only be set on an oxygen cylinder.
@router.get("/products", dependencies=SEARCHERS)
async def product_categories(
    ids: Annotated[str, Query(max_length=3700, description="product ids, comma-separated")],
    session: DbSession,
) -> ProductCategoriesOut:
    """The category of each known product of `ids` (at most 100; unknown ones are left out)."""
    try:
        product_ids = [uuid.UUID(part) for part in ids.split(",") if part.strip()]
    except ValueError:
        raise UnprocessableEntity("ids must be comma-separated product ids.") from None
    if not 1 <= len(product_ids) <= 100:
        raise UnprocessableEntity("ids must name 1 to 100 products.")
    categories = await area.product_categories(session, product_ids)
    return ProductCategoriesOut(
        items=[ProductCategoryOut(id=pid, category=c) for pid, c in categories.items()]
    )


@router.get("/depots/{depot_id}", dependencies=PRICING)
async def get_depot(depot_id: uuid.UUID, session: DbSession) -> InternalDepotOut:
    row = await stock.depot_summary(session, depot_id)
    return InternalDepotOut.model_validate(row)


@router.get("/catalog/nearby", response_model=Page[NearbyItem], dependencies=SEARCHERS)
async def nearby(page: NearbyPage) -> Response:
    return page


# --- the cylinder ledger: an order's cylinders (order-service's dispatch and delivery) ----

_REFUSED: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "cylinders-refused: serials that may not move (`cylinders`, each"
        " with its reason) and, for a dispatch, miscounted cylinder lines (`lines`)"
    }
}


@router.post("/cylinders/dispatch", dependencies=ORDERS, responses=_REFUSED)
async def dispatch_cylinders(body: CylinderDispatch, session: DbSession, now: Now) -> DispatchOut:
    """The named full serials go in transit on the order, exactly `quantity` of each
    cylinder line; a repeat keeps those named again and returns the others."""
    moved = await cylinders.dispatch(
        session, body, actor=cylinders.Actor(body.actor_id, body.vendor_id), now=now
    )
    return DispatchOut(
        order_id=body.order_id,
        cylinders=[SerialProduct(serial=c.serial, product_id=c.product_id) for c in moved],
    )


@router.post(
    "/cylinders/deliver",
    dependencies=ORDERS,
    responses={**_REFUSED, 404: {"description": "Returns to a depot that is not the vendor's"}},
)
async def deliver_cylinders(body: CylinderDeliver, session: DbSession, now: Now) -> DeliverOut:
    """The order's cylinders in transit go to the hospital (charged their product's
    deposit); `returned` empties go back to the depot, one cylinder.returned each."""
    delivery = await cylinders.deliver(
        session, body, actor=cylinders.Actor(body.actor_id, body.vendor_id), now=now
    )
    return DeliverOut(
        order_id=body.order_id,
        delivered=[SerialProduct(serial=s, product_id=p) for s, p in delivery.delivered],
        returned=[SerialProduct(serial=s, product_id=p) for s, p in delivery.returned],
    )
