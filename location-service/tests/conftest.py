"""location-service tests run the app in-process on the session's real PostgreSQL/PostGIS
and Redis (the `infra` fixture); an external geocoder is stubbed at its HTTP boundary."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from flow_shared.testing.infra import caller_key
from flow_shared.testing.service_app import (
    SettingsFactory,
    client_opener,
    schema_engine_fixture,
    settings_fixture,
)
from flow_shared.testing.tokens import TokenIssuer
from location_service.config import Settings
from location_service.main import create_app

INTERNAL_KEY = caller_key("order-service")
INTERNAL = {"X-Service-Key": INTERNAL_KEY}
GEOCODER_URL = "http://geocoder.test"

Handler = Callable[[httpx.Request], httpx.Response]


class GeocoderStub:
    """A Nominatim-compatible /search endpoint; `handler` decides each answer."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.handler: Handler = lambda request: httpx.Response(200, json=[])

    def answer(self, *places: dict[str, Any]) -> None:
        self.handler = lambda request: httpx.Response(200, json=list(places))

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return self.handler(request)

        return httpx.MockTransport(handle)


LocationClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def geocoder_stub() -> GeocoderStub:
    return GeocoderStub()


make_settings = settings_fixture("location-service", Settings)


@pytest.fixture
def location_client_for(
    make_settings: SettingsFactory[Settings], token_issuer: TokenIssuer, geocoder_stub: GeocoderStub
) -> LocationClientFactory:
    """Opens location-service in-process; keyword arguments override its settings."""

    def build(**overrides: Any) -> FastAPI:
        return create_app(
            make_settings(**overrides),
            jwks_fetcher=token_issuer.fetch_jwks,
            geocoder_transport=geocoder_stub.transport(),
        )

    return client_opener(build)


@pytest.fixture
async def location_client(
    location_client_for: LocationClientFactory,
) -> AsyncIterator[httpx.AsyncClient]:
    async with location_client_for() as client:
        yield client


@pytest.fixture
async def external_geocoder_client(
    location_client_for: LocationClientFactory,
) -> AsyncIterator[httpx.AsyncClient]:
    """location-service with GEOCODER_URL pointing at `geocoder_stub`."""
    async with location_client_for(geocoder_url=GEOCODER_URL) as client:
        yield client


@pytest.fixture
def user_headers(token_issuer: TokenIssuer) -> dict[str, str]:
    return token_issuer.headers(org_kind="hospital", role="staff")


@pytest.fixture
def hospital_id() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def hospital(token_issuer: TokenIssuer, hospital_id: uuid.UUID) -> dict[str, str]:
    return token_issuer.headers(org_kind="hospital", role="staff", org_id=hospital_id)


location_engine = schema_engine_fixture("location")


PostgisDistances = Callable[[list[tuple[float, float, float, float]]], Any]


@pytest.fixture
def postgis_distances_m(location_engine: AsyncEngine) -> PostgisDistances:
    """Reference geodesic distances (metres) from PostGIS: ST_Distance on geography
    with use_spheroid (WGS84), for (lat1, lon1, lat2, lon2) pairs, in order."""

    async def distances(pairs: list[tuple[float, float, float, float]]) -> list[float]:
        async with location_engine.connect() as connection:
            result = await connection.execute(
                text(
                    "SELECT ST_Distance("
                    " ST_SetSRID(ST_MakePoint(p.lon1, p.lat1), 4326)::geography,"
                    " ST_SetSRID(ST_MakePoint(p.lon2, p.lat2), 4326)::geography, true)"
                    " FROM unnest(CAST(:lat1 AS float8[]), CAST(:lon1 AS float8[]),"
                    "             CAST(:lat2 AS float8[]), CAST(:lon2 AS float8[]))"
                    "      WITH ORDINALITY AS p(lat1, lon1, lat2, lon2, n)"
                    " ORDER BY p.n"
                ),
                {
                    "lat1": [p[0] for p in pairs],
                    "lon1": [p[1] for p in pairs],
                    "lat2": [p[2] for p in pairs],
                    "lon2": [p[3] for p in pairs],
                },
            )
            return [float(row[0]) for row in result]

    return distances
