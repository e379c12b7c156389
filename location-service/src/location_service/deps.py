"""Request dependencies of location-service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from flow_shared.app_state import app_state
from flow_shared.validation import Latitude, Longitude
from location_service.config import Settings
from location_service.geocoding import Geocoder
from location_service.schemas import Priority
from location_service.service import Coordinates

SettingsDep = Annotated[Settings, Depends(app_state("settings", Settings))]
GeocoderDep = Annotated[Geocoder, Depends(app_state("geocoder", Geocoder))]


@dataclass(frozen=True, slots=True)
class RouteQuery:
    origin: Coordinates
    destination: Coordinates
    priority: Priority


async def _route_query(
    from_lat: Latitude,
    from_lon: Longitude,
    to_lat: Latitude,
    to_lon: Longitude,
    priority: Priority = "routine",
) -> RouteQuery:
    return RouteQuery(Coordinates(from_lat, from_lon), Coordinates(to_lat, to_lon), priority)


# The same parameters (and the same validation) on the public and the internal route.
RouteQueryDep = Annotated[RouteQuery, Depends(_route_query)]
