"""Geocoding: the external geocoder when one is configured, the offline gazetteer always."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

import structlog

from flow_shared.metrics import business_counter
from location_service.gazetteer import City, Gazetteer, GazetteerDataset, load_gazetteer

GAZETTEER_SOURCE = "gazetteer"

GEOCODER_FALLBACKS = business_counter(
    "flow_geocoder_fallbacks_total",
    "Geocoding requests answered by the gazetteer because the external geocoder failed.",
)

log = structlog.get_logger("location_service.geocoding")


@dataclass(frozen=True, slots=True)
class Place:
    name: str
    country: str | None
    country_code: str | None
    lat: float
    lon: float
    source: str


class ExternalGeocoderFailed(Exception):
    """The external geocoder gave no usable answer; the gazetteer answers instead."""


class ExternalGeocoder(Protocol):
    source: str

    async def search(
        self, query: str, *, limit: int, country_code: str | None = None
    ) -> list[Place]: ...


class GazetteerLoader:
    """Builds the gazetteer index on first use, in a worker thread (it takes about a second
    and a half), and hands the same index to every later caller."""

    def __init__(self, dataset: GazetteerDataset) -> None:
        self._dataset = dataset
        self._gazetteer: Gazetteer | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Gazetteer:
        if self._gazetteer is None:
            async with self._lock:
                if self._gazetteer is None:
                    self._gazetteer = await asyncio.to_thread(load_gazetteer, self._dataset)
        return self._gazetteer


def _place(city: City) -> Place:
    return Place(
        name=city.name,
        country=city.country,
        country_code=city.country_code,
        lat=city.lat,
        lon=city.lon,
        source=GAZETTEER_SOURCE,
    )


class Geocoder:
    def __init__(self, gazetteer: GazetteerLoader, external: ExternalGeocoder | None) -> None:
        self.gazetteer = gazetteer
        self.external = external

    async def search(
        self, query: str, *, limit: int, country_code: str | None = None
    ) -> list[Place]:
        """Places matching `query`, best first; from the external geocoder when it answers
        with results, else from the gazetteer."""
        external = await self._external_search(query, limit=limit, country_code=country_code)
        if external:
            return external
        gazetteer = await self.gazetteer.get()
        matches = gazetteer.search(query, limit=limit, country_code=country_code)
        return [_place(match.city) for match in matches]

    async def locate_address(self, address: str) -> Place | None:
        """The best single place for a postal address, or None when nothing matches."""
        external = await self._external_search(address, limit=1)
        if external:
            return external[0]
        gazetteer = await self.gazetteer.get()
        city = gazetteer.best_for_address(address)
        return _place(city) if city is not None else None

    async def _external_search(
        self, query: str, *, limit: int, country_code: str | None = None
    ) -> list[Place]:
        if self.external is None:
            return []
        try:
            return await self.external.search(query, limit=limit, country_code=country_code)
        except ExternalGeocoderFailed as exc:
            GEOCODER_FALLBACKS.inc()
            log.warning("geocoder_fallback_to_gazetteer", reason=str(exc))
            return []
