"""order-service's /internal routes (service-key callers only, named per route)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends

from flow_shared.auth import accepts_callers, require_service_key
from flow_shared.idempotency import RequiredIdempotencyKey
from flow_shared.json_codec import ORJSONResponse
from flow_shared.unit_of_work import DbSession, RequestUnitOfWork
from order_service.deps import SettingsDep, UpstreamsDep
from order_service.schemas import (
    AllocationOut,
    AllocationOverrides,
    AutoOrderCreate,
    AutoOrderOut,
    AutoSosCreate,
    AutoSosOut,
)
from order_service.service import allocation, auto_reorder

router = APIRouter(prefix="/internal", tags=["internal"])


@router.put(
    "/allocation/{org_id}",
    dependencies=[accepts_callers("admin-service")],
    description=(
        "A platform admin's caps for one hospital (forwarded by admin-service): each listed"
        " product gets `units` as its cap (`null` goes back to the default). Answers the"
        " hospital's allocation as GET /api/v1/allocation would."
    ),
)
async def put_allocation(
    org_id: uuid.UUID, body: AllocationOverrides, session: DbSession, settings: SettingsDep
) -> AllocationOut:
    items = await allocation.set_caps(session, settings, org_id, body.caps, actor_id=body.actor_id)
    return AllocationOut(items=items)


# The calling service, as accepts_callers established it (FastAPI runs it once per request).
ServiceCaller = Annotated[str, Depends(require_service_key)]


@router.post(
    "/auto-orders",
    status_code=201,
    response_model=AutoOrderOut,
    dependencies=[accepts_callers("inventory-service")],
    description=(
        "The order a hospital configured for a site's low oxygen runway, placed by Flow for"
        " it as POST /api/v1/orders would place it (allocation caps, the shortage pause of"
        " routine orders, the emergency reserve), paid by invoice, with no user acting"
        " (`placed_by` null). No depot is named: the nearest verified depots with the"
        " stock are tried best ETA first, the next when one's stock is gone meanwhile."
    ),
    responses={
        403: {"description": "Not a service this route accepts"},
        404: {"description": "The site is not one of this hospital's"},
        409: {
            "description": "Over the allocation cap (`.../allocation-cap-exceeded` with"
            " `product_id, cap, open, requested`), a routine order inside a shortage"
            " (`.../shortage-routine-paused`), or no depot in range can take it"
            " (`.../no-supplier-in-range` with `candidates_considered`)"
        },
        422: {"description": "Invalid body, no Idempotency-Key, or the key reused"},
        503: {"description": "A service the order needs is down; nothing was left held"},
    },
)
async def create_auto_order(
    body: AutoOrderCreate,
    caller: ServiceCaller,
    uow: RequestUnitOfWork,
    upstreams: UpstreamsDep,
    settings: SettingsDep,
    idempotency_key: RequiredIdempotencyKey,
) -> ORJSONResponse:
    answer = await auto_reorder.place_order(
        uow, upstreams, settings, body, caller=caller, idempotency_key=idempotency_key
    )
    return answer.response(f"/api/v1/orders/{answer.body['order']['id']}")


@router.post(
    "/sos",
    status_code=201,
    response_model=AutoSosOut,
    dependencies=[accepts_callers("inventory-service")],
    description=(
        "The SOS for a site's critical oxygen runway, opened by Flow for the hospital as"
        " POST /api/v1/sos would open it (the allocation cap applies), with the default"
        " distance, ring size and ring timeout, paid by invoice."
    ),
    responses={
        403: {"description": "Not a service this route accepts"},
        404: {"description": "The site is not one of this hospital's"},
        409: {"description": "Nobody in range has the stock, or over the allocation cap"},
        422: {"description": "Invalid body, no Idempotency-Key, or the key reused"},
        503: {"description": "A service the SOS needs is down; nothing was opened"},
    },
)
async def open_auto_sos(
    body: AutoSosCreate,
    caller: ServiceCaller,
    uow: RequestUnitOfWork,
    upstreams: UpstreamsDep,
    settings: SettingsDep,
    idempotency_key: RequiredIdempotencyKey,
) -> ORJSONResponse:
    answer = await auto_reorder.open_sos(
        uow, upstreams, settings, body, caller=caller, idempotency_key=idempotency_key
    )
    return answer.response(f"/api/v1/sos/{answer.body['sos']['id']}")
