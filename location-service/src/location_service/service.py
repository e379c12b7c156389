"""Business rules of location-service: route estimates and hospital delivery sites.

Functions take the session and only flush; the request's transaction commits.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.auth import Principal
from flow_shared.geo import GEODESIC_METHOD, geodesic_distance_m
from flow_shared.pagination import PageParams, fetch_page
from location_service.config import Settings
from location_service.errors import AddressNotFound, SiteNotFound
from location_service.geocoding import Geocoder
from location_service.models import Site
from location_service.schemas import BatchRoute, Priority, RouteEstimate, RouteOrigin, SiteCreate

GIVEN_LOCATION = "given"


# --- routes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Coordinates:
    lat: float
    lon: float


def route_source(settings: Settings) -> str:
    """Names the method and the road factor, e.g. "geodesic-wgs84-karney\u00d71.30"."""
    return f"{GEODESIC_METHOD}\N{MULTIPLICATION SIGN}{settings.route_road_factor:.2f}"


def _speed_kmh(settings: Settings, priority: Priority) -> float:
    speeds = {
        "routine": settings.route_speed_routine_kmh,
        "urgent": settings.route_speed_urgent_kmh,
        "emergency": settings.route_speed_emergency_kmh,
    }
    return speeds[priority]


def _round_half_up(value: float, digits: int = 0) -> float:
    scale = 10.0**digits
    return math.floor(value * scale + 0.5) / scale


def estimate_route(
    settings: Settings, origin: Coordinates, destination: Coordinates, priority: Priority
) -> RouteEstimate:
    """Road distance (geodesic times road factor) and driving time at the priority's speed
    plus the fixed handling time; km to 0.1, minutes whole."""
    geodesic_m = geodesic_distance_m(origin.lat, origin.lon, destination.lat, destination.lon)
    road_km = geodesic_m / 1000 * settings.route_road_factor
    minutes = settings.route_handling_minutes + road_km / _speed_kmh(settings, priority) * 60
    return RouteEstimate(
        distance_km=_round_half_up(road_km, 1),
        duration_min=int(_round_half_up(minutes)),
        source=route_source(settings),
    )


def estimate_routes_to(
    settings: Settings,
    origins: Sequence[RouteOrigin],
    destination: Coordinates,
    priority: Priority,
) -> list[BatchRoute]:
    """One estimate per origin, in the order given."""
    routes = []
    for origin in origins:
        estimate = estimate_route(
            settings, Coordinates(origin.lat, origin.lon), destination, priority
        )
        routes.append(BatchRoute(id=origin.id, **estimate.model_dump()))
    return routes


# --- sites ----------------------------------------------------------------------------------


async def create_site(
    session: AsyncSession, geocoder: Geocoder, hospital: Principal, request: SiteCreate
) -> Site:
    """A delivery site of the caller's hospital, placed by its coordinates or its address."""
    if request.lat is not None and request.lon is not None:
        lat, lon, source = request.lat, request.lon, GIVEN_LOCATION
    else:
        assert request.address is not None  # guaranteed by SiteCreate's validator
        place = await geocoder.locate_address(request.address)
        if place is None:
            raise AddressNotFound(
                "No place matches this address. Add the city (and country) to it, "
                "or send lat and lon instead.",
                errors=[{"loc": ["body", "address"], "msg": "address could not be geocoded"}],
            )
        lat, lon, source = place.lat, place.lon, place.source
    site = Site(
        org_id=hospital.org_id,
        created_by=hospital.user_id,
        name=request.name,
        address=request.address,
        lat=lat,
        lon=lon,
        location_source=source,
    )
    session.add(site)
    await session.flush()
    return site


async def list_sites(
    session: AsyncSession, org_id: uuid.UUID, params: PageParams
) -> tuple[Sequence[Site], int]:
    """An organisation's sites, newest first."""
    statement = select(Site).where(Site.org_id == org_id).order_by(Site.created_at.desc(), Site.id)
    sites, total = await fetch_page(session, statement, params)
    return sites, total


async def get_site(session: AsyncSession, site_id: uuid.UUID, *, org_id: uuid.UUID | None) -> Site:
    """A site of `org_id` (any organisation's when None); otherwise SiteNotFound, so that
    another organisation's site looks exactly like one that does not exist."""
    statement = select(Site).where(Site.id == site_id)
    if org_id is not None:
        statement = statement.where(Site.org_id == org_id)
    site = await session.scalar(statement)
    if site is None:
        raise SiteNotFound("No site with this id.")
    return site


async def orgs_with_site_within(
    session: AsyncSession, *, lat: float, lon: float, radius_km: float
) -> list[uuid.UUID]:
    """Every hospital organisation with a delivery site within `radius_km` of the point
    (sphere distance, on the sites' GiST index): who hears of a shortage declared there."""
    rows = await session.scalars(
        select(Site.org_id)
        .where(
            text(
                "ST_DWithin(sites.location,"
                " ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :radius_m, false)"
            ).bindparams(lon=lon, lat=lat, radius_m=radius_km * 1000.0)
        )
        .distinct()
        .order_by(Site.org_id)
    )
    return list(rows)
