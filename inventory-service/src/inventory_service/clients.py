"""Typed clients of the internal APIs inventory-service calls: location-service (whose a
site is) and order-service (auto-reorder).

Every call goes through flow_shared's ServiceClient (timeouts, a breaker per upstream,
retries for idempotent methods only); an answer that breaks the contract is a 502.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
from pydantic import BaseModel, ConfigDict

from flow_shared.http import ServiceClient, UpstreamAnswer
from flow_shared.upstream import parse_answer, problem_detail, problem_of, unexpected_answer
from inventory_service.config import Settings
from inventory_service.errors import SiteNotFound

LOCATION_SERVICE = "location-service"
ORDER_SERVICE = "order-service"
# order-service's answers that refuse the request for good (a cap, a shortage pause, no
# supplier in range, a site no longer the hospital's): sending it again changes nothing.
REFUSALS = frozenset({404, 409, 422})


class Site(BaseModel):
    """What inventory-service reads of a site (callees may add fields)."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    org_id: uuid.UUID
    name: str | None = None


class LocationClient:
    def __init__(self, http: ServiceClient) -> None:
        self.http = http

    async def get_site(self, site_id: uuid.UUID, *, org_id: uuid.UUID) -> Site:
        """The site, if `org_id` owns it; SiteNotFound otherwise (another hospital's site
        is as unknown as one that does not exist)."""
        response = await self.http.get(f"/internal/sites/{site_id}", params={"org_id": str(org_id)})
        if response.status_code == 404:
            raise SiteNotFound("Your organisation has no delivery site with this id.")
        return parse_answer(LOCATION_SERVICE, response, Site, expect=200)


class Refused(Exception):
    """order-service refused an auto-reorder; `reason` is its problem's detail."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Created(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID


class _OrderCreated(BaseModel):
    model_config = ConfigDict(extra="ignore")

    order: _Created


class _SosCreated(BaseModel):
    model_config = ConfigDict(extra="ignore")

    sos: _Created


@dataclass(frozen=True, slots=True)
class AutoReorderRequest:
    hospital_org_id: uuid.UUID
    site_id: uuid.UUID
    product_id: uuid.UUID
    quantity: int
    note: str


class OrderClient:
    """order-service's auto-reorder routes. Each call carries its Idempotency-Key, so the
    same request sent again (a lost answer, a restart) gets the first answer."""

    def __init__(self, http: ServiceClient) -> None:
        self.http = http

    async def place_order(
        self, request: AutoReorderRequest, *, priority: str, idempotency_key: str
    ) -> uuid.UUID:
        """The id of the order placed; Refused when order-service will not place it."""
        body = {**_request_body(request), "priority": priority}
        response = await self._post("/internal/auto-orders", body, idempotency_key)
        return parse_answer(ORDER_SERVICE, response, _OrderCreated).order.id

    async def open_sos(self, request: AutoReorderRequest, *, idempotency_key: str) -> uuid.UUID:
        """The id of the SOS opened; Refused when order-service will not open it."""
        response = await self._post("/internal/sos", _request_body(request), idempotency_key)
        return parse_answer(ORDER_SERVICE, response, _SosCreated).sos.id

    async def _post(self, path: str, body: dict[str, object], key: str) -> UpstreamAnswer:
        response = await self.http.post(path, json=body, headers={"Idempotency-Key": key})
        if response.status_code in REFUSALS:
            problem = problem_of(response)
            raise Refused(problem_detail(problem, f"order-service answered {response.status_code}"))
        if response.status_code != 201:
            raise unexpected_answer(ORDER_SERVICE, response)
        return response


def _request_body(request: AutoReorderRequest) -> dict[str, object]:
    return {
        "hospital_org_id": str(request.hospital_org_id),
        "site_id": str(request.site_id),
        "product_id": str(request.product_id),
        "quantity": request.quantity,
        "note": request.note,
    }


@dataclass(frozen=True, slots=True)
class Upstreams:
    location: LocationClient
    order: OrderClient

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        location_transport: httpx.AsyncBaseTransport | None = None,
        order_transport: httpx.AsyncBaseTransport | None = None,
    ) -> Upstreams:
        def client(
            upstream: str, url: str, transport: httpx.AsyncBaseTransport | None
        ) -> ServiceClient:
            return ServiceClient.from_settings(settings, upstream, url, transport=transport)

        return cls(
            location=LocationClient(
                client(LOCATION_SERVICE, settings.location_service_url, location_transport)
            ),
            order=OrderClient(client(ORDER_SERVICE, settings.order_service_url, order_transport)),
        )

    async def aclose(self) -> None:
        await self.location.http.aclose()
        await self.order.http.aclose()
