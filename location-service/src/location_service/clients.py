"""Client of an external Nominatim-compatible geocoder (optional: GEOCODER_URL)."""

from __future__ import annotations

import httpx
import structlog
from pydantic import BaseModel, TypeAdapter, ValidationError

from flow_shared.errors import ServiceUnavailable
from flow_shared.http import ServiceClient
from flow_shared.validation import LatitudeValue, LongitudeValue
from location_service.config import Settings
from location_service.geocoding import ExternalGeocoderFailed, Place

GEOCODER = "geocoder"

log = structlog.get_logger("location_service.clients")


class _NominatimAddress(BaseModel):
    country: str | None = None
    country_code: str | None = None


class _NominatimPlace(BaseModel):
    # Nominatim sends coordinates as strings; lax parsing turns them into floats.
    lat: LatitudeValue
    lon: LongitudeValue
    display_name: str
    name: str | None = None
    address: _NominatimAddress | None = None


_PLACES = TypeAdapter(list[_NominatimPlace])


class NominatimClient:
    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        if settings.geocoder_url is None:
            raise ValueError("NominatimClient needs GEOCODER_URL")
        self.source = settings.geocoder_source
        self._headers = {"User-Agent": settings.geocoder_user_agent, "Accept": "application/json"}
        # No service key: this is not a Flow service and must not receive one.
        self._http = ServiceClient.from_settings(
            settings, GEOCODER, settings.geocoder_url, transport=transport, send_service_key=False
        )

    async def search(
        self, query: str, *, limit: int, country_code: str | None = None
    ) -> list[Place]:
        params: dict[str, str | int] = {
            "q": query,
            "format": "jsonv2",
            "addressdetails": 1,
            "limit": limit,
        }
        if country_code is not None:
            params["countrycodes"] = country_code.lower()
        try:
            response = await self._http.get("/search", params=params, headers=self._headers)
        except ServiceUnavailable as exc:  # timeouts, 5xx, open breaker
            raise ExternalGeocoderFailed(exc.detail) from None
        if response.status_code != 200:
            # 429 (rate limited) or 4xx: the gazetteer still answers.
            raise ExternalGeocoderFailed(f"{GEOCODER} answered {response.status_code}")
        try:
            places = _PLACES.validate_json(response.content)
        except ValidationError:
            raise ExternalGeocoderFailed(f"{GEOCODER} sent an unreadable answer") from None
        return [self._place(place) for place in places[:limit]]

    def _place(self, place: _NominatimPlace) -> Place:
        address = place.address or _NominatimAddress()
        name = place.name or place.display_name.split(",")[0].strip() or place.display_name
        return Place(
            name=name,
            country=address.country,
            country_code=address.country_code.upper() if address.country_code else None,
            lat=place.lat,
            lon=place.lon,
            source=self.source,
        )

    async def aclose(self) -> None:
        await self._http.aclose()
