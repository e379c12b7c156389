"""Fixtures for pricing-service: the app on the real database and Redis, with
inventory-service and location-service stubbed at their HTTP boundary."""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from flow_shared.testing.infra import TestInfra, caller_key
from flow_shared.testing.service_app import (
    client_opener,
    schema_engine_fixture,
    settings_factory,
)
from flow_shared.testing.tokens import TokenIssuer
from pricing_service.config import Settings
from pricing_service.main import create_app

INVENTORY_URL = "http://inventory-service.test"
LOCATION_URL = "http://location-service.test"
QUOTES_PATH = "/api/v1/pricing/quotes"
COMPARE_PATH = "/api/v1/pricing/compare"
PRICING_KEY = "test-key-pricing-service"
CALLER_KEY = caller_key("order-service")


def _problem(status: int, title: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={"title": title, "status": status, "detail": title},
        headers={"content-type": "application/problem+json"},
    )


@dataclass
class Depot:
    depot_id: uuid.UUID
    vendor_id: uuid.UUID
    vendor_name: str
    name: str
    lat: float
    lon: float
    # Road distance location-service answers from this depot to any delivery point.
    distance_km: float
    available: int = 100
    vendor_active: bool = True
    service_radius_km: float = 50.0
    # Not updated for inventory's STALE_STOCK_HOURS.
    stale: bool = False


@dataclass
class UpstreamStub(ABC):
    """A service's /internal API at the HTTP boundary: records every request, fails as an
    unreachable service does while `failure` is set, and refuses a caller without
    pricing-service's key."""

    requests: list[httpx.Request] = field(default_factory=list)
    failure: type[httpx.TransportError] | None = None

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.failure is not None:
            raise self.failure("connection refused", request=request)
        if request.headers.get("X-Service-Key") != PRICING_KEY:
            return _problem(401, "Unauthorized")
        return self.answer(request)

    @abstractmethod
    def answer(self, request: httpx.Request) -> httpx.Response:
        """The answer to a request of the trusted caller: each stub gives its service's."""


@dataclass
class InventoryStub(UpstreamStub):
    """Answers like inventory-service's /internal API."""

    depots: dict[uuid.UUID, Depot] = field(default_factory=dict)
    # GET /internal/products: each known product's category (unknown ones are left out).
    categories: dict[uuid.UUID, str] = field(default_factory=dict)

    def add_depot(
        self,
        *,
        vendor_id: uuid.UUID | None = None,
        distance_km: float = 10.0,
        available: int = 100,
        vendor_active: bool = True,
        vendor_name: str = "Oxy Vendor",
        stale: bool = False,
    ) -> Depot:
        index = len(self.depots)
        depot = Depot(
            depot_id=uuid.uuid4(),
            vendor_id=vendor_id or uuid.uuid4(),
            vendor_name=vendor_name,
            name=f"Depot {index}",
            # Distinct coordinates so the location stub can tell depots apart.
            lat=10.0 + index * 0.01,
            lon=20.0 + index * 0.01,
            distance_km=distance_km,
            available=available,
            vendor_active=vendor_active,
            stale=stale,
        )
        self.depots[depot.depot_id] = depot
        return depot

    def answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "GET" and path.startswith("/internal/depots/"):
            depot = self.depots.get(uuid.UUID(path.rsplit("/", 1)[1]))
            if depot is None:
                return _problem(404, "Not found")
            return httpx.Response(200, json=self._depot_body(depot))
        if request.method == "GET" and path == "/internal/catalog/nearby":
            return self._nearby(request)
        if request.method == "GET" and path == "/internal/products":
            ids = [uuid.UUID(part) for part in request.url.params["ids"].split(",")]
            items = [
                {"id": str(i), "category": self.categories[i]} for i in ids if i in self.categories
            ]
            return httpx.Response(200, json={"items": items})
        return _problem(404, "Not found")

    @staticmethod
    def _depot_body(depot: Depot) -> dict[str, Any]:
        return {
            "depot_id": str(depot.depot_id),
            "vendor_id": str(depot.vendor_id),
            "vendor_name": depot.vendor_name,
            "name": depot.name,
            "lat": depot.lat,
            "lon": depot.lon,
            "service_radius_km": depot.service_radius_km,
            "vendor_active": depot.vendor_active,
        }

    def _nearby(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        product_id = params["product_id"]
        min_quantity = int(params["min_quantity"])
        page, page_size = int(params["page"]), int(params["page_size"])
        rows = sorted(
            (d for d in self.depots.values() if d.vendor_active and d.available >= min_quantity),
            # As inventory ranks them: fresh stock first, then nearest.
            key=lambda d: (d.stale, d.distance_km),
        )
        items = [
            {
                "depot_id": str(d.depot_id),
                "depot_name": d.name,
                "vendor_id": str(d.vendor_id),
                "vendor_name": d.vendor_name,
                "product_id": product_id,
                "sku": "O2-CYL-D",
                "product_name": "Oxygen cylinder D",
                "available": d.available,
                "updated_at": "2026-11-24T10:00:00Z",
                "stale": d.stale,
                # Straight-line distance: smaller than the road distance on purpose.
                "distance_km": round(d.distance_km / 1.3, 1),
                "lat": d.lat,
                "lon": d.lon,
            }
            for d in rows
        ]
        start = (page - 1) * page_size
        body = {
            "items": items[start : start + page_size],
            "page": page,
            "page_size": page_size,
            "total": len(items),
        }
        return httpx.Response(200, json=body)


@dataclass(kw_only=True)
class LocationStub(UpstreamStub):
    """Answers like location-service's /internal routes, with each depot's fixed distance."""

    inventory: InventoryStub

    def _route(self, depot: Depot) -> dict[str, Any]:
        return {
            "distance_km": depot.distance_km,
            "duration_min": round(depot.distance_km / 40 * 60 + 10),
            "source": "geodesic-wgs84x1.30",
        }

    def answer(self, request: httpx.Request) -> httpx.Response:
        depots = list(self.inventory.depots.values())
        if request.method == "GET" and request.url.path == "/internal/routes/estimate":
            params = request.url.params
            origin = (float(params["from_lat"]), float(params["from_lon"]))
            for depot in depots:
                if (depot.lat, depot.lon) == origin:
                    return httpx.Response(200, json=self._route(depot))
            return httpx.Response(
                200, json={"distance_km": 1.0, "duration_min": 12, "source": "geodesic-wgs84x1.30"}
            )
        if request.method == "POST" and request.url.path == "/internal/routes/batch":
            body = httpx.Response(200, content=request.content).json()
            by_id = {str(d.depot_id): d for d in depots}
            routes = [{"id": o["id"], **self._route(by_id[o["id"]])} for o in body["origins"]]
            return httpx.Response(200, json={"routes": routes})
        return _problem(404, "Not found")


PricingAppFactory = Callable[..., FastAPI]
PricingClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def inventory() -> InventoryStub:
    return InventoryStub()


@pytest.fixture
def location(inventory: InventoryStub) -> LocationStub:
    return LocationStub(inventory=inventory)


@pytest.fixture
def pricing_app_for(
    infra: TestInfra, token_issuer: TokenIssuer, inventory: InventoryStub, location: LocationStub
) -> PricingAppFactory:
    """Builds pricing-service; keyword overrides change its settings."""

    make_settings = settings_factory(
        infra,
        "pricing-service",
        Settings,
        inventory_service_url=INVENTORY_URL,
        location_service_url=LOCATION_URL,
        # One attempt keeps "upstream down" tests quick; retries are ServiceClient's job.
        upstream_attempts=1,
    )

    def build(**overrides: Any) -> FastAPI:
        return create_app(
            make_settings(**overrides),
            jwks_fetcher=token_issuer.fetch_jwks,
            inventory_transport=inventory.transport(),
            location_transport=location.transport(),
        )

    return build


@pytest.fixture
def pricing_client_for(pricing_app_for: PricingAppFactory) -> PricingClientFactory:
    """Opens pricing-service in-process; keyword overrides change its settings."""
    return client_opener(pricing_app_for)


@pytest.fixture
async def pricing_client(
    pricing_client_for: PricingClientFactory,
) -> AsyncIterator[httpx.AsyncClient]:
    async with pricing_client_for() as client:
        yield client


@pytest.fixture
def vendor_headers(token_issuer: TokenIssuer) -> Callable[[uuid.UUID], dict[str, str]]:
    def headers(vendor_id: uuid.UUID) -> dict[str, str]:
        return token_issuer.headers(org_kind="vendor", role="org_admin", org_id=vendor_id)

    return headers


@pytest.fixture
def hospital_id() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def hospital(token_issuer: TokenIssuer, hospital_id: uuid.UUID) -> dict[str, str]:
    return token_issuer.headers(org_kind="hospital", role="staff", org_id=hospital_id)


@pytest.fixture
def service_headers() -> dict[str, str]:
    return {"X-Service-Key": CALLER_KEY}


def price_body(
    unit_price: str = "100.00",
    *,
    currency: str = "USD",
    per_km: str = "2.00",
    min_fee: str = "15.00",
    pct: str = "10",
    deposit: str | None = None,
) -> dict[str, str]:
    body = {
        "unit_price": unit_price,
        "currency": currency,
        "delivery_fee_per_km": per_km,
        "min_delivery_fee": min_fee,
        "emergency_surcharge_pct": pct,
    }
    if deposit is not None:
        body["deposit_per_cylinder"] = deposit
    return body


PriceBody = Callable[..., dict[str, str]]
QuoteBody = Callable[..., dict[str, Any]]
SetPrice = Callable[..., Any]
# `priced_depot(**depot)`: a new depot (`InventoryStub.add_depot`'s options) and a new
# product its vendor prices at `price_body`'s defaults.
PricedDepot = Callable[..., Awaitable[tuple[Depot, uuid.UUID]]]
# `ask_quote(client, depot, lines, *, priority=..., **fields)`: the hospital POSTs a quote
# request for `lines` (product, quantity) at `depot`; `fields` replace those of the body.
AskQuote = Callable[..., Awaitable[httpx.Response]]
# `ask_compare(client, product_id, quantity=2, *, headers=..., **params)`: a compare as the
# hospital (or with `headers`) delivering where `quote_body` does; `params` add or replace.
AskCompare = Callable[..., Awaitable[httpx.Response]]
# `stored_quotes(*depot_ids)`: how many quotes the database holds for those depots.
StoredQuotes = Callable[..., Awaitable[int]]


@pytest.fixture
def make_price_body() -> PriceBody:
    return price_body


@pytest.fixture
def make_quote_body() -> QuoteBody:
    return quote_body


@pytest.fixture
def set_price(
    pricing_client: httpx.AsyncClient, vendor_headers: Callable[[uuid.UUID], dict[str, str]]
) -> SetPrice:
    """PUTs a vendor's price through the API and asserts it was accepted."""

    async def put(vendor_id: uuid.UUID, product_id: uuid.UUID, **body: Any) -> dict[str, Any]:
        response = await pricing_client.put(
            f"/api/v1/pricing/prices/{product_id}",
            json=price_body(**body),
            headers=vendor_headers(vendor_id),
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    return put


@pytest.fixture
def priced_depot(inventory: InventoryStub, set_price: SetPrice) -> PricedDepot:
    async def add(**depot_options: Any) -> tuple[Depot, uuid.UUID]:
        depot = inventory.add_depot(**depot_options)
        product = uuid.uuid4()
        await set_price(depot.vendor_id, product)
        return depot, product

    return add


@pytest.fixture
def ask_quote(hospital: dict[str, str]) -> AskQuote:
    async def ask(
        client: httpx.AsyncClient,
        depot: Depot,
        lines: list[tuple[uuid.UUID, int]],
        *,
        priority: str = "routine",
        **fields: Any,
    ) -> httpx.Response:
        body = {**quote_body(depot, lines, priority=priority), **fields}
        return await client.post(QUOTES_PATH, json=body, headers=hospital)

    return ask


@pytest.fixture
def ask_compare(hospital: dict[str, str]) -> AskCompare:
    async def ask(
        client: httpx.AsyncClient,
        product_id: uuid.UUID,
        quantity: int = 2,
        *,
        headers: dict[str, str] | None = None,
        **params: Any,
    ) -> httpx.Response:
        query = {"product_id": str(product_id), "quantity": quantity, "lat": 9.5, "lon": 19.5}
        return await client.get(
            COMPARE_PATH,
            params={**query, **params},
            headers=hospital if headers is None else headers,
        )

    return ask


def quote_body(
    depot: Depot, items: list[tuple[uuid.UUID, int]], *, priority: str = "routine"
) -> dict[str, Any]:
    return {
        "vendor_id": str(depot.vendor_id),
        "depot_id": str(depot.depot_id),
        "items": [{"product_id": str(p), "quantity": q} for p, q in items],
        "delivery": {"lat": 9.5, "lon": 19.5},
        "priority": priority,
    }


# No search_path: tables are named with their schema, and reflection keeps it.
pricing_engine = schema_engine_fixture("pricing", schema_on_search_path=False)


@pytest.fixture
def stored_quotes(pricing_engine: AsyncEngine) -> StoredQuotes:
    async def count(*depot_ids: uuid.UUID) -> int:
        async with pricing_engine.connect() as conn:
            stored = await conn.scalar(
                text("SELECT count(*) FROM pricing.quotes WHERE depot_id = ANY(:depots)"),
                {"depots": list(depot_ids)},
            )
        return int(stored or 0)

    return count
