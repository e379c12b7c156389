"""Public HTTP API (/api/v1/locations): parse, authorise, call service.py, shape the answer."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.security import OAuth2PasswordBearer

from flow_shared.auth import CurrentPrincipal, Principal, require_org_kind
from flow_shared.errors import Forbidden
from flow_shared.pagination import Page, Pagination
from flow_shared.unit_of_work import DbSession
from location_service import service
from location_service.deps import GeocoderDep, RouteQueryDep, SettingsDep
from location_service.schemas import (
    GeocodeResponse,
    GeocodeResult,
    RouteEstimate,
    SiteCreate,
    SiteOut,
)

# Only for the docs' Authorize button; CurrentPrincipal does the verifying.
_docs_oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)

router = APIRouter(
    prefix="/api/v1/locations", tags=["locations"], dependencies=[Depends(_docs_oauth2)]
)

Hospital = Annotated[Principal, Depends(require_org_kind("hospital"))]


@router.get("/geocode")
async def geocode(
    _user: CurrentPrincipal,
    geocoder: GeocoderDep,
    settings: SettingsDep,
    # At least one non-blank character; long enough for a full postal address.
    q: Annotated[str, Query(min_length=1, max_length=200, pattern=r"\S")],
    limit: Annotated[int | None, Query(ge=1, le=50)] = None,
    country: Annotated[
        str | None, Query(pattern=r"^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2 filter")
    ] = None,
) -> GeocodeResponse:
    """Places matching `q`, best first (exact names, then by population)."""
    places = await geocoder.search(
        q.strip(),
        limit=limit or settings.geocode_default_limit,
        country_code=country.upper() if country else None,
    )
    return GeocodeResponse(results=[GeocodeResult.model_validate(place) for place in places])


@router.get("/route")
async def route(
    _user: CurrentPrincipal, query: RouteQueryDep, settings: SettingsDep
) -> RouteEstimate:
    """Estimated road distance and driving time from one point to another."""
    return service.estimate_route(settings, query.origin, query.destination, query.priority)


@router.post("/sites", status_code=201)
async def create_site(
    body: SiteCreate, hospital: Hospital, session: DbSession, geocoder: GeocoderDep
) -> SiteOut:
    site = await service.create_site(session, geocoder, hospital, body)
    return SiteOut.model_validate(site)


@router.get("/sites")
async def list_sites(
    principal: CurrentPrincipal,
    session: DbSession,
    pagination: Pagination,
    org_id: Annotated[
        uuid.UUID | None, Query(description="platform admins: whose sites to list")
    ] = None,
) -> Page[SiteOut]:
    """The caller's organisation's sites, newest first."""
    if org_id is not None and org_id != principal.org_id and not principal.is_platform_admin:
        raise Forbidden("Only platform admins can list another organisation's sites.")
    sites, total = await service.list_sites(session, org_id or principal.org_id, pagination)
    return Page[SiteOut].of([SiteOut.model_validate(s) for s in sites], pagination, total)


@router.get("/sites/{site_id}")
async def get_site(site_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession) -> SiteOut:
    """One of the caller's organisation's sites (platform admins: any site)."""
    org_id = None if principal.is_platform_admin else principal.org_id
    site = await service.get_site(session, site_id, org_id=org_id)
    return SiteOut.model_validate(site)
