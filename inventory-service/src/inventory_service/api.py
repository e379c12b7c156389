"""Public HTTP API (/api/v1): parse, authorise, call the service functions, shape the answer.

The cylinder ledger (/api/v1/cylinders; vendors their own cylinders, hospitals /held):
POST /cylinders                      -> 201 CylinderOut (registered full, or empty)
POST /cylinders/bulk                 -> 201 {created, cylinders} (all or nothing)
GET  /cylinders?status&holder_org_id&hydrotest_due_before&depot_id&product_id -> Page
GET  /cylinders/held                 -> Page[HeldCylinderOut] (hospital; oldest first)
GET  /cylinders/overdue              -> Page[OverdueCylinderOut] (held > CYLINDER_RETURN_DAYS)
POST /cylinders/returns              -> {depot_id, returned} (a collection: held -> empty)
GET  /cylinders/{serial}             -> CylinderDetailOut (with its moves, oldest first)
POST /cylinders/{serial}/hydrotest   -> CylinderOut (passed: next due; failed: quarantined)
POST /cylinders/{serial}/fill        -> CylinderOut (empty -> full)
POST /cylinders/{serial}/retire      -> CylinderOut (at the depot -> retired)
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.security import OAuth2PasswordBearer

from flow_shared.auth import CurrentPrincipal, PlatformAdmin, Principal
from flow_shared.clock import Now, utcnow
from flow_shared.errors import UnprocessableEntity
from flow_shared.pagination import Page, Pagination
from flow_shared.unit_of_work import DbSession
from flow_shared.validation import (
    CYLINDER_SERIAL_MAX_LENGTH,
    CYLINDER_SERIAL_PATTERN,
    MAX_UNITS,
    Latitude,
    Longitude,
    Text,
)
from inventory_service.deps import (
    CatalogWriteSession,
    DatabaseDep,
    HospitalUser,
    RedisDep,
    SettingsDep,
    UpstreamsDep,
    VendorUser,
)
from inventory_service.errors import ProductNotFound
from inventory_service.models import CylinderStatus, Product, ProductCategory
from inventory_service.schemas import (
    CylinderBulkCreate,
    CylinderBulkOut,
    CylinderCollection,
    CylinderCollectionOut,
    CylinderCreate,
    CylinderDetailOut,
    CylinderMoveOut,
    CylinderOut,
    CylinderRetire,
    DepotCreate,
    DepotOut,
    HeldCylinderOut,
    HydrotestResult,
    MovementOut,
    NearbyItem,
    OverdueCylinderOut,
    ProductCreate,
    ProductOut,
    ProductUpdate,
    RunwayOut,
    StockAdjust,
    StockOut,
    StockSet,
    SupplyReport,
    VendorAvailability,
)
from inventory_service.service import catalog, cylinders, stock, supply
from inventory_service.service.stock import StockView

# Only for the docs' Authorize button; CurrentPrincipal does the verifying.
_docs_oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
_authenticated = [Depends(_docs_oauth2)]

catalog_router = APIRouter(prefix="/api/v1/catalog", tags=["catalog"], dependencies=_authenticated)
inventory_router = APIRouter(
    prefix="/api/v1/inventory", tags=["inventory"], dependencies=_authenticated
)
vendors_router = APIRouter(prefix="/api/v1/vendors", tags=["catalog"], dependencies=_authenticated)
supply_router = APIRouter(prefix="/api/v1/supply", tags=["supply"], dependencies=_authenticated)
cylinders_router = APIRouter(
    prefix="/api/v1/cylinders", tags=["cylinders"], dependencies=_authenticated
)
MAX_RADIUS_KM = 500.0


def _product(product: Product) -> ProductOut:
    return ProductOut.model_validate(product)


def _stock(view: StockView) -> StockOut:
    return StockOut(
        depot_id=view.depot_id,
        product_id=view.product_id,
        sku=view.sku,
        product_name=view.product_name,
        on_hand=view.on_hand,
        reserved=view.reserved,
        available=view.available,
        low_stock_threshold=view.low_stock_threshold,
        updated_at=view.updated_at,
    )


# --- catalogue ------------------------------------------------------------------------


@catalog_router.get("/products")
async def list_products(
    _principal: CurrentPrincipal,
    session: DbSession,
    pagination: Pagination,
    category: ProductCategory | None = None,
    q: Annotated[Text | None, Query(max_length=100)] = None,
) -> Page[ProductOut]:
    products, total = await catalog.list_products(
        session, pagination, category=category, q=q.strip() if q else None
    )
    return Page[ProductOut].of([_product(p) for p in products], pagination, total)


@catalog_router.post("/products", status_code=201)
async def create_product(
    body: ProductCreate, _admin: PlatformAdmin, session: DbSession
) -> ProductOut:
    return _product(await catalog.create_product(session, body))


@catalog_router.patch(
    "/products/{product_id}",
    description=(
        "Correct a product's name, description or `gas_liters` (platform admins). A product"
        " that stores oxygen must say how much: a runway report counting one without it is"
        " refused (422 `gas-unknown`) rather than counted as empty."
    ),
    responses={
        403: {"description": "Not a platform admin"},
        404: {"description": "Unknown product"},
        422: {"description": "Invalid body, or gas_liters that does not fit the category"},
    },
)
async def update_product(
    product_id: uuid.UUID, body: ProductUpdate, _admin: PlatformAdmin, session: CatalogWriteSession
) -> ProductOut:
    return _product(await catalog.update_product(session, product_id, body))


@catalog_router.get("/products/{product_id}")
async def get_product(
    product_id: uuid.UUID, _principal: CurrentPrincipal, session: DbSession
) -> ProductOut:
    product = await session.get(Product, product_id)
    if product is None:
        raise ProductNotFound()
    return _product(product)


async def nearby_page(
    database: DatabaseDep,
    redis: RedisDep,
    settings: SettingsDep,
    pagination: Pagination,
    lat: Latitude,
    lon: Longitude,
    radius_km: Annotated[float, Query(gt=0, le=MAX_RADIUS_KM)] = 25.0,
    product_id: uuid.UUID | None = None,
    category: ProductCategory | None = None,
    min_quantity: Annotated[int, Query(ge=0, le=MAX_UNITS)] = 1,
) -> Response:
    """Shared by the public and the internal nearby routes: same query, same cache."""
    body, cached = await catalog.cached_nearby(
        database,
        redis,
        redis_prefix=settings.redis_key_prefix,
        cache_seconds=settings.nearby_cache_seconds,
        stale_before=utcnow() - timedelta(hours=settings.stale_stock_hours),
        query=catalog.NearbyQuery(
            lat=lat,
            lon=lon,
            radius_km=radius_km,
            product_id=product_id,
            category=category,
            min_quantity=min_quantity,
        ),
        params=pagination,
    )
    # X-Cache lets clients (and the integration check) see the cache at work.
    return Response(
        content=body,
        media_type="application/json",
        headers={"X-Cache": "hit" if cached else "miss"},
    )


NearbyPage = Annotated[Response, Depends(nearby_page)]


@catalog_router.get("/nearby", response_model=Page[NearbyItem])
async def nearby(_principal: CurrentPrincipal, page: NearbyPage) -> Response:
    """Stock of verified vendors within radius_km, nearest first; a stock change is
    visible on the next call (the cache key moves with every change)."""
    return page


@vendors_router.get("/{vendor_id}/availability")
async def vendor_availability(
    vendor_id: uuid.UUID, _principal: CurrentPrincipal, session: DbSession
) -> VendorAvailability:
    return await catalog.vendor_availability(session, vendor_id)


# --- depots and stock (the vendor's own) ----------------------------------------------


@inventory_router.post("/depots", status_code=201)
async def create_depot(body: DepotCreate, vendor: VendorUser, session: DbSession) -> DepotOut:
    depot = await stock.create_depot(session, vendor.org_id, body)
    return DepotOut.model_validate(depot)


@inventory_router.get("/depots")
async def list_depots(
    vendor: VendorUser, session: DbSession, pagination: Pagination
) -> Page[DepotOut]:
    depots, total = await stock.list_depots(session, vendor.org_id, pagination)
    return Page[DepotOut].of([DepotOut.model_validate(d) for d in depots], pagination, total)


@inventory_router.get("/depots/{depot_id}")
async def get_depot(depot_id: uuid.UUID, vendor: VendorUser, session: DbSession) -> DepotOut:
    return DepotOut.model_validate(await stock.vendor_depot(session, vendor.org_id, depot_id))


@inventory_router.put("/depots/{depot_id}/stock/{product_id}")
async def set_stock(
    depot_id: uuid.UUID,
    product_id: uuid.UUID,
    body: StockSet,
    vendor: VendorUser,
    session: CatalogWriteSession,
) -> StockOut:
    depot = await stock.vendor_depot(session, vendor.org_id, depot_id)
    view = await stock.set_stock(session, depot, product_id, body, actor=str(vendor.user_id))
    return _stock(view)


@inventory_router.post("/depots/{depot_id}/stock/{product_id}/adjust")
async def adjust_stock(
    depot_id: uuid.UUID,
    product_id: uuid.UUID,
    body: StockAdjust,
    vendor: VendorUser,
    session: CatalogWriteSession,
) -> StockOut:
    depot = await stock.vendor_depot(session, vendor.org_id, depot_id)
    view = await stock.adjust_stock(session, depot, product_id, body, actor=str(vendor.user_id))
    return _stock(view)


@inventory_router.get("/depots/{depot_id}/stock")
async def list_stock(
    depot_id: uuid.UUID, vendor: VendorUser, session: DbSession, pagination: Pagination
) -> Page[StockOut]:
    depot = await stock.vendor_depot(session, vendor.org_id, depot_id)
    views, total = await stock.list_stock(session, depot, pagination)
    return Page[StockOut].of([_stock(v) for v in views], pagination, total)


@inventory_router.get("/depots/{depot_id}/stock/{product_id}/movements")
async def list_movements(
    depot_id: uuid.UUID,
    product_id: uuid.UUID,
    vendor: VendorUser,
    session: DbSession,
    pagination: Pagination,
) -> Page[MovementOut]:
    """Every change of this stock row, newest first."""
    depot = await stock.vendor_depot(session, vendor.org_id, depot_id)
    movements, total = await stock.list_movements(session, depot, product_id, pagination)
    return Page[MovementOut].of(
        [MovementOut.model_validate(m) for m in movements], pagination, total
    )


# --- the oxygen runway (a hospital's sites) --------------------------------------------


@supply_router.put("/sites/{site_id}")
async def report_supply(
    site_id: uuid.UUID,
    body: SupplyReport,
    hospital: HospitalUser,
    upstreams: UpstreamsDep,
    session: DbSession,
    now: Now,
) -> RunwayOut:
    """Report a site's oxygen as counted now (it replaces the last report) and get its
    runway. A crossing of alert_hours or critical_hours alerts the hospital once."""
    site = await upstreams.location.get_site(site_id, org_id=hospital.org_id)
    reported = await supply.report(session, hospital, site, body, now=now)
    return await supply.runway_of(session, reported, now=now)


@supply_router.get("/sites/{site_id}/runway")
async def site_runway(
    site_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession, now: Now
) -> RunwayOut:
    """Hours of oxygen the site has left now, with and without its inbound orders."""
    return await supply.get_runway(session, principal, site_id, now=now)


@supply_router.get("/runway")
async def list_runways(
    principal: CurrentPrincipal, session: DbSession, pagination: Pagination, now: Now
) -> Page[RunwayOut]:
    """A hospital's sites, or for platform admins every site, soonest to run out first."""
    runways, total = await supply.list_runways(session, principal, pagination, now=now)
    return Page[RunwayOut].of(runways, pagination, total)


# --- the cylinder ledger ------------------------------------------------------------------

SerialPath = Annotated[
    str, Path(pattern=CYLINDER_SERIAL_PATTERN, max_length=CYLINDER_SERIAL_MAX_LENGTH)
]
_VENDOR_ONLY: dict[int | str, dict[str, Any]] = {
    403: {"description": "Not a vendor organisation's user"}
}
_NO_CYLINDER: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such serial of this vendor"}
}


def _actor(principal: Principal) -> cylinders.Actor:
    return cylinders.Actor(principal.user_id, principal.org_id)


@cylinders_router.post(
    "",
    status_code=201,
    responses={
        **_VENDOR_ONLY,
        404: {"description": "Unknown product, or a depot that is not the vendor's"},
        409: {"description": "serial-taken: the vendor already has this serial"},
        422: {"description": "Bad input, or a product that is not an oxygen cylinder"},
    },
)
async def register_cylinder(
    body: CylinderCreate, vendor: VendorUser, session: DbSession, now: Now
) -> CylinderOut:
    registered = await cylinders.register(
        session, vendor.org_id, [body], actor=_actor(vendor), now=now
    )
    return CylinderOut.model_validate(registered[0])


@cylinders_router.post(
    "/bulk",
    status_code=201,
    responses={
        **_VENDOR_ONLY,
        404: {"description": "Unknown product, or a depot that is not the vendor's"},
        409: {"description": "serial-taken: some serials exist already (`serials`)"},
        422: {"description": "Bad input, serials repeated in the body, or not a cylinder"},
    },
)
async def register_cylinders(
    body: CylinderBulkCreate, vendor: VendorUser, session: DbSession, now: Now
) -> CylinderBulkOut:
    """All or nothing."""
    registered = await cylinders.register(
        session, vendor.org_id, body.cylinders, actor=_actor(vendor), now=now
    )
    return CylinderBulkOut(
        created=len(registered), cylinders=[CylinderOut.model_validate(c) for c in registered]
    )


@cylinders_router.get("", responses={**_VENDOR_ONLY})
async def list_cylinders(
    vendor: VendorUser,
    session: DbSession,
    pagination: Pagination,
    status: CylinderStatus | None = None,
    holder_org_id: uuid.UUID | None = None,
    hydrotest_due_before: date | None = None,
    depot_id: uuid.UUID | None = None,
    product_id: uuid.UUID | None = None,
) -> Page[CylinderOut]:
    """The vendor's cylinders by serial; `hydrotest_due_before` finds those due a test."""
    where = cylinders.CylinderFilter(
        status=status,
        holder_org_id=holder_org_id,
        hydrotest_due_before=hydrotest_due_before,
        depot_id=depot_id,
        product_id=product_id,
    )
    rows, total = await cylinders.list_cylinders(session, vendor.org_id, where, pagination)
    return Page[CylinderOut].of([CylinderOut.model_validate(c) for c in rows], pagination, total)


@cylinders_router.get(
    "/held", responses={403: {"description": "Not a hospital organisation's user"}}
)
async def held_cylinders(
    hospital: HospitalUser,
    session: DbSession,
    settings: SettingsDep,
    pagination: Pagination,
    now: Now,
) -> Page[HeldCylinderOut]:
    """The cylinders the hospital holds, oldest first; overdue past CYLINDER_RETURN_DAYS."""
    items, total = await cylinders.held(
        session, hospital.org_id, pagination, return_days=settings.cylinder_return_days, now=now
    )
    return Page[HeldCylinderOut].of(items, pagination, total)


@cylinders_router.get("/overdue", responses={**_VENDOR_ONLY})
async def overdue_cylinders(
    vendor: VendorUser,
    session: DbSession,
    settings: SettingsDep,
    pagination: Pagination,
    now: Now,
) -> Page[OverdueCylinderOut]:
    """The vendor's cylinders held longer than CYLINDER_RETURN_DAYS, oldest first."""
    items, total = await cylinders.overdue(
        session, vendor.org_id, pagination, return_days=settings.cylinder_return_days, now=now
    )
    return Page[OverdueCylinderOut].of(items, pagination, total)


@cylinders_router.post(
    "/returns",
    responses={
        **_VENDOR_ONLY,
        404: {"description": "A depot that is not the vendor's"},
        409: {"description": "cylinders-refused: serials unknown or not held (`cylinders`)"},
    },
)
async def collect_cylinders(
    body: CylinderCollection, vendor: VendorUser, session: DbSession, now: Now
) -> CylinderCollectionOut:
    """Empties collected from hospitals without a delivery: all or nothing."""
    returned = await cylinders.collect(
        session, vendor.org_id, body.depot_id, body.serials, actor=_actor(vendor), now=now
    )
    return CylinderCollectionOut(
        depot_id=body.depot_id, returned=[CylinderOut.model_validate(c) for c in returned]
    )


@cylinders_router.get("/{serial}", responses={**_VENDOR_ONLY, **_NO_CYLINDER})
async def get_cylinder(
    serial: SerialPath, vendor: VendorUser, session: DbSession
) -> CylinderDetailOut:
    cylinder = await cylinders.get_cylinder(session, vendor.org_id, serial)
    moves = await cylinders.moves_of(session, cylinder.id)
    return CylinderDetailOut.model_validate(
        {
            **CylinderOut.model_validate(cylinder).model_dump(),
            "moves": [CylinderMoveOut.model_validate(m) for m in moves],
        }
    )


@cylinders_router.post(
    "/{serial}/hydrotest",
    responses={
        **_VENDOR_ONLY,
        **_NO_CYLINDER,
        409: {"description": "cylinder-not-at-depot"},
        422: {"description": "Bad input, or a next_due that is not after today"},
    },
)
async def hydrotest_cylinder(
    serial: SerialPath, body: HydrotestResult, vendor: VendorUser, session: DbSession, now: Now
) -> CylinderOut:
    if body.passed and body.next_due is not None and body.next_due <= now.date():
        raise UnprocessableEntity("next_due must be after today.")
    cylinder = await cylinders.hydrotest(
        session,
        vendor.org_id,
        serial,
        passed=body.passed,
        next_due=body.next_due,
        actor=_actor(vendor),
        now=now,
    )
    return CylinderOut.model_validate(cylinder)


@cylinders_router.post(
    "/{serial}/fill",
    responses={
        **_VENDOR_ONLY,
        **_NO_CYLINDER,
        409: {
            "description": "cylinder-not-at-depot, or cylinder-not-fillable (not empty,"
            " quarantined, or hydrotest overdue)"
        },
    },
)
async def fill_cylinder(
    serial: SerialPath, vendor: VendorUser, session: DbSession, now: Now
) -> CylinderOut:
    cylinder = await cylinders.fill(session, vendor.org_id, serial, actor=_actor(vendor), now=now)
    return CylinderOut.model_validate(cylinder)


@cylinders_router.post(
    "/{serial}/retire",
    responses={**_VENDOR_ONLY, **_NO_CYLINDER, 409: {"description": "cylinder-not-at-depot"}},
)
async def retire_cylinder(
    serial: SerialPath, body: CylinderRetire, vendor: VendorUser, session: DbSession, now: Now
) -> CylinderOut:
    cylinder = await cylinders.retire(
        session, vendor.org_id, serial, reason=body.reason, actor=_actor(vendor), now=now
    )
    return CylinderOut.model_validate(cylinder)


routers = [catalog_router, inventory_router, vendors_router, supply_router, cylinders_router]
