"""Typed clients of inventory-service and location-service's /internal APIs.

Transport failures and 5xx become a 503 naming the upstream (ServiceClient);
a 404 becomes a 404 of ours; any other 4xx means a misconfigured key or a
contract drift, which is our fault, not the caller's: 502.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from flow_shared.errors import DomainError
from flow_shared.http import ServiceClient, UpstreamAnswer
from flow_shared.upstream import parse_answer
from pricing_service.config import Settings
from pricing_service.errors import DepotNotFound, ProductNotFound, RouteNotFound
from pricing_service.schemas import (
    UpstreamBatchRoutes,
    UpstreamDepot,
    UpstreamNearbyPage,
    UpstreamProductCategories,
    UpstreamRoute,
)

INVENTORY_SERVICE = "inventory-service"
LOCATION_SERVICE = "location-service"
_Model = TypeVar("_Model", bound=BaseModel)


def _parse(
    response: UpstreamAnswer, model: type[_Model], *, upstream: str, not_found: DomainError
) -> _Model:
    if response.status_code == 404:
        raise not_found
    return parse_answer(upstream, response, model, expect=200)


class InventoryClient:
    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._http = ServiceClient.from_settings(
            settings, INVENTORY_SERVICE, settings.inventory_service_url, transport=transport
        )

    async def get_depot(self, depot_id: uuid.UUID) -> UpstreamDepot:
        response = await self._http.get(f"/internal/depots/{depot_id}")
        return _parse(
            response,
            UpstreamDepot,
            upstream=INVENTORY_SERVICE,
            not_found=DepotNotFound(f"Depot {depot_id} does not exist."),
        )

    async def nearby(
        self,
        *,
        lat: float,
        lon: float,
        radius_km: float,
        product_id: uuid.UUID,
        min_quantity: int,
        page: int,
        page_size: int,
    ) -> UpstreamNearbyPage:
        params: dict[str, Any] = {
            "lat": lat,
            "lon": lon,
            "radius_km": radius_km,
            "product_id": str(product_id),
            "min_quantity": min_quantity,
            "page": page,
            "page_size": page_size,
        }
        response = await self._http.get("/internal/catalog/nearby", params=params)
        return _parse(
            response,
            UpstreamNearbyPage,
            upstream=INVENTORY_SERVICE,
            not_found=ProductNotFound(f"Product {product_id} does not exist."),
        )

    async def product_category(self, product_id: uuid.UUID) -> str | None:
        """The product's category; None when inventory-service does not know it."""
        response = await self._http.get("/internal/products", params={"ids": str(product_id)})
        answer = parse_answer(INVENTORY_SERVICE, response, UpstreamProductCategories, expect=200)
        return next((item.category for item in answer.items if item.id == product_id), None)

    async def aclose(self) -> None:
        await self._http.aclose()


class LocationClient:
    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._http = ServiceClient.from_settings(
            settings, LOCATION_SERVICE, settings.location_service_url, transport=transport
        )

    async def estimate(
        self, *, from_lat: float, from_lon: float, to_lat: float, to_lon: float, priority: str
    ) -> UpstreamRoute:
        params: dict[str, Any] = {
            "from_lat": from_lat,
            "from_lon": from_lon,
            "to_lat": to_lat,
            "to_lon": to_lon,
            "priority": priority,
        }
        response = await self._http.get("/internal/routes/estimate", params=params)
        return _parse(
            response,
            UpstreamRoute,
            upstream=LOCATION_SERVICE,
            not_found=RouteNotFound("No route could be estimated to the delivery point."),
        )

    async def batch(
        self,
        *,
        to_lat: float,
        to_lon: float,
        origins: Sequence[tuple[str, float, float]],
        priority: str,
    ) -> UpstreamBatchRoutes:
        body = {
            "to": {"lat": to_lat, "lon": to_lon},
            "origins": [{"id": id_, "lat": lat, "lon": lon} for id_, lat, lon in origins],
            "priority": priority,
        }
        response = await self._http.post("/internal/routes/batch", json=body)
        return _parse(
            response,
            UpstreamBatchRoutes,
            upstream=LOCATION_SERVICE,
            not_found=RouteNotFound("No route could be estimated to the delivery point."),
        )

    async def aclose(self) -> None:
        await self._http.aclose()
