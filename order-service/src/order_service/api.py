"""Public order API: parse, authorize, call the service, shape the answer."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query
from fastapi.security import OAuth2PasswordBearer

from flow_shared.auth import CurrentPrincipal
from flow_shared.idempotency import IdempotencyKey
from flow_shared.json_codec import ORJSONResponse
from flow_shared.pagination import Page, Pagination
from flow_shared.unit_of_work import DbSession, RequestUnitOfWork
from order_service import queries
from order_service.deps import (
    HospitalUser,
    SettingsDep,
    UpstreamsDep,
    VendorUser,
)
from order_service.models import OrderStatus, SosStatus
from order_service.schemas import (
    MIN_RING_TIMEOUT_SECONDS,
    AllocationOut,
    CancelRequest,
    ConfirmRequest,
    DeliverRequest,
    DirectOrderCreate,
    DirectOrderOut,
    DispatchRequest,
    OrderCreate,
    OrderOut,
    RejectRequest,
    SosAccept,
    SosAcceptOut,
    SosCreate,
    SosDecline,
    SosOut,
)
from order_service.service import allocation, direct, fulfilment, placement, sos

# Only for the docs' Authorize button; CurrentPrincipal does the verifying.
_docs_oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)

router = APIRouter(prefix="/api/v1/orders", tags=["orders"], dependencies=[Depends(_docs_oauth2)])

_PLACEMENT_ERRORS: dict[int | str, dict[str, str]] = {
    404: {"description": "Unknown delivery site, depot or product"},
    409: {
        "description": "Not enough stock (`short_items`; a routine order may not use a depot's"
        " emergency reserve), vendor unavailable, no price, or over the hospital's allocation"
        " cap (type `.../allocation-cap-exceeded` with `product_id, cap, open, requested`)"
    },
    422: {"description": "Invalid body (client-sent prices included) or Idempotency-Key reused"},
    503: {"description": "A service the order needs is down; nothing was left held"},
}


@router.post("", status_code=201, response_model=OrderOut, responses=_PLACEMENT_ERRORS)
async def create_order(
    body: OrderCreate,
    hospital: HospitalUser,
    uow: RequestUnitOfWork,
    upstreams: UpstreamsDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> ORJSONResponse:
    answer = await placement.create_order(
        uow, upstreams, settings, hospital, body, idempotency_key=idempotency_key
    )
    return answer.response(f"/api/v1/orders/{answer.body['id']}")


@router.post("/direct", status_code=201, response_model=DirectOrderOut, responses=_PLACEMENT_ERRORS)
async def create_direct_order(
    body: DirectOrderCreate,
    hospital: HospitalUser,
    uow: RequestUnitOfWork,
    upstreams: UpstreamsDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> ORJSONResponse:
    answer = await direct.create_direct_order(
        uow, upstreams, settings, hospital, body, idempotency_key=idempotency_key
    )
    return answer.response(f"/api/v1/orders/{answer.body['order']['id']}")


@router.get("")
async def list_orders(
    principal: CurrentPrincipal,
    session: DbSession,
    pagination: Pagination,
    status: Annotated[OrderStatus | None, Query()] = None,
) -> Page[OrderOut]:
    return await queries.list_orders(session, principal, status=status, params=pagination)


@router.get("/{order_id}", responses={404: {"description": "Unknown, or not yours"}})
async def get_order(
    order_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession
) -> OrderOut:
    return OrderOut.of(await queries.get_order(session, principal, order_id))


_MOVE_ERRORS: dict[int | str, dict[str, str]] = {
    403: {"description": "Not this kind of organisation's move"},
    404: {"description": "Unknown, or not yours"},
    409: {"description": "Illegal transition from the order's current status"},
}


@router.post("/{order_id}/cancel", responses=_MOVE_ERRORS)
async def cancel_order(
    order_id: uuid.UUID,
    hospital: HospitalUser,
    uow: RequestUnitOfWork,
    upstreams: UpstreamsDep,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> OrderOut:
    order = await fulfilment.cancel(
        uow,
        upstreams.inventory,
        hospital,
        order_id,
        reason=body.reason if body is not None else None,
    )
    return OrderOut.of(order)


@router.post(
    "/{order_id}/confirm",
    responses={
        **_MOVE_ERRORS,
        409: {
            "description": "Illegal transition, the order expired, or its stock hold was lost"
            " (`hold-lost`: the order stays placed until it expires)"
        },
        503: {"description": "inventory-service is down; the order is unchanged"},
    },
)
async def confirm_order(
    order_id: uuid.UUID,
    vendor: VendorUser,
    uow: RequestUnitOfWork,
    upstreams: UpstreamsDep,
    settings: SettingsDep,
    body: Annotated[ConfirmRequest | None, Body()] = None,
) -> OrderOut:
    order = await fulfilment.confirm(
        uow,
        upstreams.inventory,
        vendor,
        order_id,
        eta_minutes=body.eta_minutes if body is not None else None,
        hold_seconds=settings.confirmed_hold_seconds,
    )
    return OrderOut.of(order)


@router.post("/{order_id}/reject", responses=_MOVE_ERRORS)
async def reject_order(
    order_id: uuid.UUID,
    body: RejectRequest,
    vendor: VendorUser,
    uow: RequestUnitOfWork,
    upstreams: UpstreamsDep,
) -> OrderOut:
    order = await fulfilment.reject(uow, upstreams.inventory, vendor, order_id, reason=body.reason)
    return OrderOut.of(order)


_CYLINDER_ERRORS: dict[int | str, dict[str, str]] = {
    422: {"description": "Invalid body (a serial off the pattern, named twice, over 1000)"},
    502: {"description": "inventory-service answered outside its contract; order unchanged"},
    503: {"description": "inventory-service is down; the order is unchanged"},
}


@router.post(
    "/{order_id}/dispatch",
    responses={
        **_MOVE_ERRORS,
        **_CYLINDER_ERRORS,
        409: {
            "description": "Illegal transition; `.../cylinders-required` (the order took"
            " deposits: name its serials); or `.../cylinders-refused` with `cylinders:"
            " [{serial, reason}]` and `lines: [{product_id, quantity, named}]`"
        },
    },
)
async def dispatch_order(
    order_id: uuid.UUID,
    vendor: VendorUser,
    uow: RequestUnitOfWork,
    upstreams: UpstreamsDep,
    body: Annotated[DispatchRequest | None, Body()] = None,
) -> OrderOut:
    """Dispatch; `cylinders` names the serials of its oxygen-cylinder lines (required when
    the order took deposits), tracked from here by inventory-service."""
    order = await fulfilment.dispatch(
        uow,
        upstreams.inventory,
        vendor,
        order_id,
        cylinders=body.cylinders if body is not None else None,
    )
    return OrderOut.of(order)


@router.post(
    "/{order_id}/deliver",
    responses={
        **_MOVE_ERRORS,
        **_CYLINDER_ERRORS,
        409: {
            "description": "Illegal transition, the stock hold is no longer held, or"
            " `.../cylinders-refused` with `cylinders: [{serial, reason}]` (a returned serial"
            " unknown or not held by this hospital)"
        },
    },
)
async def deliver_order(
    order_id: uuid.UUID,
    vendor: VendorUser,
    uow: RequestUnitOfWork,
    upstreams: UpstreamsDep,
    body: Annotated[DeliverRequest | None, Body()] = None,
) -> OrderOut:
    """Deliver; `returned_cylinders` names the empties the hospital hands back (their
    deposits are credited)."""
    order = await fulfilment.deliver(
        uow,
        upstreams.inventory,
        vendor,
        order_id,
        returned_cylinders=body.returned_cylinders if body is not None else None,
    )
    return OrderOut.of(order)


allocation_router = APIRouter(
    prefix="/api/v1/allocation", tags=["allocation"], dependencies=[Depends(_docs_oauth2)]
)


@allocation_router.get(
    "",
    description=(
        "The calling hospital's allocation: for every product it has a cap override for or"
        " units open in, the cap, the open units (units in its orders not yet delivered,"
        " cancelled, rejected, expired or failed) and where the cap comes from"
        " (`default_unverified`, `default_verified` or `override`). Products not listed"
        " have the default cap and nothing open. With `site_id` (one of the hospital's"
        " sites): the caps for deliveries there, as an active shortage covering it"
        " tightens them (`shortage_ids`)."
    ),
    responses={
        403: {"description": "Not a hospital"},
        404: {"description": "No such site of this hospital"},
        503: {"description": "location-service or inventory-service unavailable"},
    },
)
async def get_allocation(
    hospital: HospitalUser,
    session: DbSession,
    settings: SettingsDep,
    upstreams: UpstreamsDep,
    site_id: Annotated[uuid.UUID | None, Query()] = None,
) -> AllocationOut:
    if site_id is None:
        return await allocation.allocation_of(session, settings, hospital.org_id)
    return await allocation.allocation_at_site(
        session, settings, upstreams, hospital.org_id, site_id
    )


sos_router = APIRouter(prefix="/api/v1/sos", tags=["sos"], dependencies=[Depends(_docs_oauth2)])

_SOS_ERRORS: dict[int | str, dict[str, str]] = {
    403: {"description": "Not this kind of organisation's move"},
    404: {"description": "Unknown, or not visible to you (a vendor never offered it)"},
    409: {
        "description": "The SOS is no longer open (`.../sos-closed`), your ring has closed"
        " (`.../sos-ring-closed`), or (accept) the depot's stock is short (`short_items`;"
        " the SOS stays open)"
    },
}


@sos_router.post(
    "",
    status_code=201,
    response_model=SosOut,
    description=(
        "Broadcast an emergency request: ring 1 offers it at once to the `ring_size` verified"
        " vendors in range with the stock (best ETA first, one depot each). Each ring lasts"
        f" `ring_timeout_seconds` (at least {MIN_RING_TIMEOUT_SECONDS}, default 180); when"
        " all of a ring decline or it times out, the next nearest are offered; nobody left"
        " makes it `unfilled`. The quantity counts against the allocation cap while open."
    ),
    responses={
        404: {"description": "Unknown delivery site"},
        409: {"description": "Nobody in range has the stock, or over the allocation cap"},
        422: {"description": "Invalid body or Idempotency-Key reused with another body"},
    },
)
async def open_sos(
    body: SosCreate,
    hospital: HospitalUser,
    uow: RequestUnitOfWork,
    upstreams: UpstreamsDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> ORJSONResponse:
    answer = await sos.open_sos(
        uow, upstreams, settings, hospital, body, idempotency_key=idempotency_key
    )
    return answer.response(f"/api/v1/sos/{answer.body['id']}")


@sos_router.get("", description="Hospital: its own; vendor: those offered to it; admin: all.")
async def list_sos(
    principal: CurrentPrincipal,
    session: DbSession,
    pagination: Pagination,
    status: Annotated[SosStatus | None, Query()] = None,
) -> Page[SosOut]:
    return await sos.list_sos(session, principal, status=status, params=pagination)


@sos_router.get(
    "/{sos_id}",
    description="A vendor sees the request and its own offer only.",
    responses={404: {"description": "Unknown, or not visible to you"}},
)
async def get_sos(sos_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession) -> SosOut:
    return await sos.get_sos(session, principal, sos_id)


@sos_router.post(
    "/{sos_id}/accept", status_code=201, response_model=SosAcceptOut, responses=_SOS_ERRORS
)
async def accept_sos(
    sos_id: uuid.UUID,
    body: SosAccept,
    vendor: VendorUser,
    uow: RequestUnitOfWork,
    upstreams: UpstreamsDep,
    settings: SettingsDep,
) -> ORJSONResponse:
    found, order = await sos.accept(uow, upstreams, settings, vendor, sos_id, body)
    answer = sos.accepted(found, order, vendor)
    return ORJSONResponse(
        answer, status_code=201, headers={"Location": f"/api/v1/orders/{order.id}"}
    )


@sos_router.post("/{sos_id}/decline", responses=_SOS_ERRORS)
async def decline_sos(
    sos_id: uuid.UUID,
    body: SosDecline,
    vendor: VendorUser,
    uow: RequestUnitOfWork,
    upstreams: UpstreamsDep,
    settings: SettingsDep,
) -> SosOut:
    found = await sos.decline(uow, upstreams, settings, vendor, sos_id, reason=body.reason)
    return sos.view(found, vendor)


@sos_router.post("/{sos_id}/cancel", responses=_SOS_ERRORS)
async def cancel_sos(sos_id: uuid.UUID, hospital: HospitalUser, uow: RequestUnitOfWork) -> SosOut:
    return sos.view(await sos.cancel(uow, hospital, sos_id), hospital)
