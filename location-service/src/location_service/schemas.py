"""Request and response bodies. Every input model forbids unknown fields."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from flow_shared.validation import LatitudeValue, LongitudeValue, NoNul

Priority = Literal["routine", "urgent", "emergency"]
SiteName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoNul()
]
Address = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), NoNul()
]
# A batch is one quote or one direct-order search: bounded so one call stays cheap.
MAX_BATCH_ORIGINS = 500


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- geocoding ---------------------------------------------------------------------------


class GeocodeResult(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    country: str | None
    # ISO 3166-1 alpha-2, when the source knows it.
    country_code: str | None
    lat: float
    lon: float
    # "gazetteer" (offline, city level) or the configured external geocoder's name.
    source: str


class GeocodeResponse(BaseModel):
    results: list[GeocodeResult]


# --- routes -------------------------------------------------------------------------------


class RouteEstimate(BaseModel):
    distance_km: float
    duration_min: int
    source: str


class Point(Input):
    lat: LatitudeValue
    lon: LongitudeValue


class RouteOrigin(Input):
    id: Annotated[str, StringConstraints(min_length=1, max_length=200), NoNul()]
    lat: LatitudeValue
    lon: LongitudeValue


class BatchRouteRequest(Input):
    to: Point
    origins: Annotated[list[RouteOrigin], Field(max_length=MAX_BATCH_ORIGINS)]
    priority: Priority = "routine"


class BatchRoute(BaseModel):
    id: str
    distance_km: float
    duration_min: int
    source: str


class BatchRouteResponse(BaseModel):
    routes: list[BatchRoute]


# --- sites ---------------------------------------------------------------------------------


class SiteCreate(Input):
    name: SiteName
    address: Address | None = None
    lat: LatitudeValue | None = None
    lon: LongitudeValue | None = None

    @model_validator(mode="after")
    def _coordinates_or_address(self) -> SiteCreate:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give both lat and lon, or neither (the address is then geocoded)")
        if self.lat is None and self.address is None:
            raise ValueError("give lat and lon, or an address to geocode")
        return self


class SiteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    address: str | None
    lat: float
    lon: float
    # "given", or the geocoder that placed the address ("gazetteer" is city-level precision).
    location_source: str
    created_at: datetime


class InternalSiteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    address: str | None
    lat: float
    lon: float
