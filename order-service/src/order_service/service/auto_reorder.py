"""Auto-reorder: Flow places an order or opens an SOS for a hospital on its own.

inventory-service decides when (a site's oxygen runway crossing `alert_hours` or
`critical_hours`, SPEC "Oxygen runway") and calls the two /internal routes; here they
follow every rule a hospital user's request does (site ownership, shortage pause,
allocation caps, emergency reserve), with nobody acting: the order's and SOS's user is
None, so order events carry `actor_id: null` and the history says "system".

    low:      the nearest verified depots with the stock, best ETA first (the SOS rings'
              candidates, direct.by_eta); the first whose hold succeeds takes the
              order (direct.place_one_product, as for direct orders), paid by invoice.
    critical: an SOS as POST /api/v1/sos opens one, with the SPEC defaults (sos.start).

Each is idempotent on the caller's Idempotency-Key within the caller and the hospital: a
retry after a restart or a lost answer replays the first answer, never a second order.
"""

from __future__ import annotations

from typing import Any

from flow_shared.idempotency import IdempotentAnswer, answer_once
from flow_shared.unit_of_work import UnitOfWork
from order_service.clients import Upstreams
from order_service.config import Settings
from order_service.models import idempotency_keys
from order_service.schemas import AutoOrderCreate, AutoSosCreate, OrderOut, SosCreate, SosOut
from order_service.service import sos
from order_service.service.direct import OneProduct, by_eta, place_one_product
from order_service.service.placement import (
    ORDERS_PLACED,
    ActingHospital,
)

ORDER_NOTE = "Placed automatically by Flow: oxygen runway low"
SOS_NOTE = "Opened automatically by Flow: oxygen runway critical"
# Nobody is there to give a card.
AUTO_PAYMENT_METHOD = "invoice"


def _notes(reason: str, note: str | None) -> str:
    return f"{reason}. {note}" if note else reason


def _flow_acting_for(body: AutoOrderCreate | AutoSosCreate) -> ActingHospital:
    return ActingHospital(org_id=body.hospital_org_id, user_id=None)


async def place_order(
    uow: UnitOfWork,
    upstreams: Upstreams,
    settings: Settings,
    body: AutoOrderCreate,
    *,
    caller: str,
    idempotency_key: str,
) -> IdempotentAnswer:
    """201 {order}; 409 `no-supplier-in-range` when no depot in range can take it."""
    hospital = _flow_acting_for(body)

    async def produce() -> dict[str, Any]:
        wanted = OneProduct(
            site_id=body.site_id,
            delivery=None,
            product_id=body.product_id,
            quantity=body.quantity,
            priority=body.priority,
            payment_method=AUTO_PAYMENT_METHOD,
            notes=_notes(ORDER_NOTE, body.note),
            radius_km=settings.direct_default_radius_km,
        )
        placed = await place_one_product(
            uow, upstreams, settings, hospital, wanted, lambda _to, _line, found: by_eta(found)
        )
        ORDERS_PLACED.labels(body.priority, "auto").inc()
        return {"order": OrderOut.of(placed.order).model_dump(mode="json")}

    return await answer_once(
        uow.session,
        idempotency_keys,
        scope=f"auto-orders.create:{caller}:{hospital.org_id}",
        key=idempotency_key,
        request_body=body.model_dump(mode="json"),
        status_code=201,
        produce=produce,
    )


async def open_sos(
    uow: UnitOfWork,
    upstreams: Upstreams,
    settings: Settings,
    body: AutoSosCreate,
    *,
    caller: str,
    idempotency_key: str,
) -> IdempotentAnswer:
    """201 {sos}; the errors POST /api/v1/sos answers."""
    hospital = _flow_acting_for(body)
    # The SPEC defaults for max_distance_km, ring_size and ring_timeout_seconds.
    request = SosCreate(
        site_id=body.site_id,
        product_id=body.product_id,
        quantity=body.quantity,
        payment_method=AUTO_PAYMENT_METHOD,
        notes=_notes(SOS_NOTE, body.note),
    )

    async def produce() -> dict[str, Any]:
        opened = await sos.start(uow, upstreams, settings, hospital, request)
        return {"sos": SosOut.of(opened).model_dump(mode="json")}

    return await answer_once(
        uow.session,
        idempotency_keys,
        scope=f"auto-sos.create:{caller}:{hospital.org_id}",
        key=idempotency_key,
        request_body=body.model_dump(mode="json"),
        status_code=201,
        produce=produce,
    )
