"""order-service's /internal routes (service-key callers only, named per route)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from flow_shared.auth import accepts_callers
from flow_shared.unit_of_work import DbSession
from order_service.deps import SettingsDep
from order_service.schemas import AllocationOut, AllocationOverrides
from order_service.service import allocation

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
