"""Allocation caps (SPEC, fair allocation): a platform admin overrides a hospital's caps.

`PUT /api/v1/admin/organizations/{org_id}/allocation {caps: [{product_id, units}]}` is
forwarded to order-service, which owns the caps and the open units
(`PUT /internal/allocation/{org_id}`), and answers the hospital's resulting allocation.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import httpx
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, model_validator

from admin_service.config import Settings
from flow_shared.app_state import app_state
from flow_shared.auth import PlatformAdmin
from flow_shared.errors import ServiceUnavailable, UnprocessableEntity
from flow_shared.http import ServiceClient
from flow_shared.upstream import parse_answer

ORDER_SERVICE = "order-service"


class CapIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: uuid.UUID
    # null removes the override: the hospital's default cap applies again.
    units: Annotated[int, Field(strict=True, ge=0, le=1_000_000)] | None


class CapsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    caps: list[CapIn] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _one_entry_per_product(self) -> CapsIn:
        products = [cap.product_id for cap in self.caps]
        if len(set(products)) != len(products):
            raise ValueError("each product may appear once in caps")
        return self


class AllocationItem(BaseModel):
    product_id: uuid.UUID
    cap: int
    open_units: int
    source: Literal["default_unverified", "default_verified", "override"]


class AllocationOut(BaseModel):
    org_id: uuid.UUID
    items: list[AllocationItem]


class _CapsAnswer(BaseModel):
    """What admin-service reads of order-service's answer."""

    items: list[AllocationItem]


class OrderServiceClient:
    """order-service's internal allocation API, through the shared client (breaker, retries)."""

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.configured = bool(settings.order_service_url)
        self._http = ServiceClient.from_settings(
            settings,
            ORDER_SERVICE,
            settings.order_service_url or "http://order-service.invalid",
            transport=transport,
        )

    async def set_caps(
        self, org_id: uuid.UUID, caps: CapsIn, *, actor_id: uuid.UUID
    ) -> AllocationOut:
        if not self.configured:
            raise ServiceUnavailable("order-service is not configured (ORDER_SERVICE_URL).")
        response = await self._http.put(
            f"/internal/allocation/{org_id}",
            json={**caps.model_dump(mode="json"), "actor_id": str(actor_id)},
        )
        if response.status_code == 422:
            raise UnprocessableEntity("order-service refused these caps.")
        items = parse_answer(ORDER_SERVICE, response, _CapsAnswer, expect=200).items
        return AllocationOut(org_id=org_id, items=items)

    async def aclose(self) -> None:
        await self._http.aclose()


OrderService = Annotated[
    OrderServiceClient, Depends(app_state("order_service", OrderServiceClient))
]

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


@router.put(
    "/organizations/{org_id}/allocation",
    description=(
        "Override a hospital's allocation caps per product (`units: null` goes back to the"
        " default). Answers the hospital's caps and open units for every product it has an"
        " override for or units open in. A cap below the units already open refuses new"
        " orders until enough of them end."
    ),
    responses={503: {"description": "order-service is down"}},
)
async def set_allocation(
    org_id: uuid.UUID, body: CapsIn, admin: PlatformAdmin, orders: OrderService
) -> AllocationOut:
    return await orders.set_caps(org_id, body, actor_id=admin.user_id)
