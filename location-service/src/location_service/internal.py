"""/internal API for order-service and pricing-service (X-Service-Key enforced by the app).

GET  /internal/sites/orgs-within?lat&lon&radius_km  -> {org_ids} (admin-service)
GET  /internal/sites/{site_id}?org_id=                   -> {id, org_id, name, address, lat, lon}
GET  /internal/routes/estimate?from_lat&from_lon&to_lat&to_lon&priority=
                                                          -> {distance_km, duration_min, source}
POST /internal/routes/batch {to, origins: [{id, lat, lon}], priority}
                                                          -> {routes: [{id, distance_km, ...}]}
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from flow_shared.auth import accepts_callers
from flow_shared.unit_of_work import DbSession
from flow_shared.validation import Latitude, Longitude, RadiusKm
from location_service import service
from location_service.deps import RouteQueryDep, SettingsDep
from location_service.schemas import (
    BatchRouteRequest,
    BatchRouteResponse,
    InternalSiteOut,
    RouteEstimate,
)

router = APIRouter(prefix="/internal", tags=["internal"])


class OrgsWithinOut(BaseModel):
    org_ids: list[uuid.UUID]


# Declared before /sites/{site_id}, which would otherwise take "orgs-within" as an id.
@router.get("/sites/orgs-within", dependencies=[accepts_callers("admin-service")])
async def orgs_within(
    lat: Latitude,
    lon: Longitude,
    radius_km: RadiusKm,
    session: DbSession,
) -> OrgsWithinOut:
    """Hospital organisations with a delivery site within `radius_km` of the point."""
    ids = await service.orgs_with_site_within(session, lat=lat, lon=lon, radius_km=radius_km)
    return OrgsWithinOut(org_ids=ids)


# inventory-service: whether a site is the hospital's, and its name (the oxygen runway).
@router.get(
    "/sites/{site_id}", dependencies=[accepts_callers("order-service", "inventory-service")]
)
async def get_site(
    site_id: uuid.UUID,
    org_id: Annotated[uuid.UUID, Query(description="the hospital that must own the site")],
    session: DbSession,
) -> InternalSiteOut:
    site = await service.get_site(session, site_id, org_id=org_id)
    return InternalSiteOut.model_validate(site)


@router.get("/routes/estimate", dependencies=[accepts_callers("pricing-service")])
async def estimate_route(query: RouteQueryDep, settings: SettingsDep) -> RouteEstimate:
    return service.estimate_route(settings, query.origin, query.destination, query.priority)


@router.post("/routes/batch", dependencies=[accepts_callers("order-service", "pricing-service")])
async def estimate_routes(body: BatchRouteRequest, settings: SettingsDep) -> BatchRouteResponse:
    destination = service.Coordinates(body.to.lat, body.to.lon)
    routes = service.estimate_routes_to(settings, body.origins, destination, body.priority)
    return BatchRouteResponse(routes=routes)
