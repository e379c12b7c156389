"""inventory-service tests: the app in-process on the session's real PostgreSQL/PostGIS,
Redis and RabbitMQ slice (the `infra` fixture), tokens from `token_issuer`.

`inv` (an `Inventory` helper) sets up vendors (through the projection's event
handlers), depots and stock (through the API), and makes reservations through
the internal API, so tests read as the promise they check.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from flow_shared.events.envelope import EventEnvelope
from flow_shared.testing.infra import caller_key
from flow_shared.testing.outbox import outbox_events
from flow_shared.testing.service_app import (
    in_process_app_fixtures,
    schema_engine_fixture,
    settings_fixture,
)
from flow_shared.testing.tokens import TokenIssuer
from inventory_service.config import Settings
from inventory_service.consumers import event_handlers
from inventory_service.main import create_app
from inventory_service.models import Product

INTERNAL_KEY = caller_key("order-service")  # reservations are its routes
PRICING_HEADERS = {"X-Service-Key": caller_key("pricing-service")}  # depot look-ups
INTERNAL_HEADERS = {"X-Service-Key": INTERNAL_KEY}


make_settings = settings_fixture(
    "inventory-service",
    Settings,
    # Tests call the sweeper themselves; the background one only runs at start-up.
    reservation_sweep_interval_seconds=3600.0,
    log_level="WARNING",
)
service_app, app, client = in_process_app_fixtures(create_app)
inventory_db = schema_engine_fixture("inventory")


@pytest.fixture(scope="session")
async def product_ids(inventory_db: AsyncEngine) -> dict[str, uuid.UUID]:
    """sku -> id of the seeded catalogue."""
    async with inventory_db.connect() as conn:
        rows = (await conn.execute(select(Product.sku, Product.id))).all()
    return {row.sku: row.id for row in rows}


def org_event(
    event_type: str,
    org_id: uuid.UUID,
    name: str,
    *,
    kind: str = "vendor",
    occurred_at: datetime | None = None,
) -> EventEnvelope:
    """An organization.* event as user-service publishes it."""
    return EventEnvelope(
        type=event_type,
        producer="user-service",
        occurred_at=occurred_at or datetime.now(UTC),
        data={
            "org_id": str(org_id),
            "name": name,
            "kind": kind,
            "actor_id": str(uuid.uuid4()),
        },
    )


@dataclass(frozen=True)
class StockLine:
    """One depot's stock of one product, as its vendor reaches it through the API."""

    depot_id: uuid.UUID
    url: str  # PUT sets on_hand; POST url + "/adjust" moves it
    headers: dict[str, str]


class Inventory:
    """Setting up and reading inventory state for a test."""

    internal_headers = INTERNAL_HEADERS
    pricing_headers = PRICING_HEADERS
    org_event = staticmethod(org_event)

    def __init__(
        self,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        tokens: TokenIssuer,
        products: dict[str, uuid.UUID],
    ) -> None:
        self.http = http
        self.engine = engine
        self.tokens = tokens
        self.products = products
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    # -- identities ------------------------------------------------------------------

    def vendor_headers(self, vendor_id: uuid.UUID) -> dict[str, str]:
        return self.tokens.headers(org_kind="vendor", role="org_admin", org_id=vendor_id)

    def hospital_headers(self) -> dict[str, str]:
        return self.tokens.headers(org_kind="hospital", role="org_admin")

    def admin_headers(self) -> dict[str, str]:
        return self.tokens.headers(org_kind="platform", role="platform_admin")

    # -- the vendor projection -------------------------------------------------------

    async def handle(self, envelope: EventEnvelope) -> None:
        handler = event_handlers()[envelope.type]
        async with self.sessions() as session, session.begin():
            await handler(session, envelope)

    async def vendor(
        self, *, verified: bool = True, suspended: bool = False, name: str | None = None
    ) -> uuid.UUID:
        vendor_id = uuid.uuid4()
        name = name or f"Vendor {vendor_id.hex[:6]}"
        if verified:
            await self.handle(org_event("organization.verified", vendor_id, name))
        if suspended:
            await self.handle(org_event("organization.suspended", vendor_id, name))
        return vendor_id

    # -- depots and stock through the API --------------------------------------------

    async def depot(
        self,
        vendor_id: uuid.UUID,
        *,
        lat: float = 52.52,
        lon: float = 13.405,
        name: str | None = None,
        service_radius_km: float = 50.0,
    ) -> uuid.UUID:
        response = await self.http.post(
            "/api/v1/inventory/depots",
            json={
                "name": name or f"Depot {uuid.uuid4().hex[:6]}",
                "lat": lat,
                "lon": lon,
                "address": "1 Gas Street",
                "service_radius_km": service_radius_km,
            },
            headers=self.vendor_headers(vendor_id),
        )
        assert response.status_code == 201, response.text
        return uuid.UUID(response.json()["id"])

    @staticmethod
    def stock_url(depot_id: uuid.UUID, product_id: uuid.UUID) -> str:
        return f"/api/v1/inventory/depots/{depot_id}/stock/{product_id}"

    async def stock_line(self, product_id: uuid.UUID) -> StockLine:
        """`product_id`'s stock line at a new depot of a new (unprojected) vendor."""
        vendor_id = uuid.uuid4()
        depot_id = await self.depot(vendor_id)
        return StockLine(
            depot_id, self.stock_url(depot_id, product_id), self.vendor_headers(vendor_id)
        )

    async def stocked_depot(
        self,
        product_id: uuid.UUID,
        on_hand: int,
        *,
        lat: float,
        lon: float,
        vendor_name: str | None = None,
    ) -> tuple[uuid.UUID, uuid.UUID]:
        """(vendor, depot): a new verified vendor's depot at (lat, lon) holding `on_hand`
        of `product_id`."""
        vendor_id = await self.vendor(name=vendor_name)
        depot_id = await self.depot(vendor_id, lat=lat, lon=lon)
        await self.set_stock(vendor_id, depot_id, product_id, on_hand)
        return vendor_id, depot_id

    async def set_stock(
        self,
        vendor_id: uuid.UUID,
        depot_id: uuid.UUID,
        product_id: uuid.UUID,
        on_hand: int,
        low_stock_threshold: int = 0,
    ) -> dict[str, Any]:
        response = await self.http.put(
            self.stock_url(depot_id, product_id),
            json={"on_hand": on_hand, "low_stock_threshold": low_stock_threshold},
            headers=self.vendor_headers(vendor_id),
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def stock_row(self, depot_id: uuid.UUID, product_id: uuid.UUID) -> tuple[int, int]:
        """(on_hand, reserved) straight from the database."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT on_hand, reserved FROM stock "
                        "WHERE depot_id = :d AND product_id = :p"
                    ),
                    {"d": depot_id, "p": product_id},
                )
            ).one()
        return int(row.on_hand), int(row.reserved)

    # -- reservations through the internal API ---------------------------------------

    @staticmethod
    def reservation_body(
        depot_id: uuid.UUID,
        items: list[tuple[uuid.UUID, int]],
        *,
        order_id: uuid.UUID | None = None,
        ttl_seconds: int = 900,
        priority: str | None = "emergency",
    ) -> dict[str, Any]:
        # Emergency by default: may use all the stock. The routine floor (the emergency
        # reserve) has its own tests, test_inventory_emergency_reserve.py.
        body: dict[str, Any] = {
            "order_id": str(order_id or uuid.uuid4()),
            "depot_id": str(depot_id),
            "items": [{"product_id": str(p), "quantity": q} for p, q in items],
            "ttl_seconds": ttl_seconds,
        }
        if priority is not None:
            body["priority"] = priority
        return body

    async def reserve(
        self,
        depot_id: uuid.UUID,
        items: list[tuple[uuid.UUID, int]],
        *,
        order_id: uuid.UUID | None = None,
        ttl_seconds: int = 900,
        http: httpx.AsyncClient | None = None,
        priority: str | None = "emergency",
    ) -> httpx.Response:
        body = self.reservation_body(
            depot_id, items, order_id=order_id, ttl_seconds=ttl_seconds, priority=priority
        )
        return await (http or self.http).post(
            "/internal/reservations", json=body, headers=INTERNAL_HEADERS
        )

    async def outbox_events(self, event_type: str, **data: str) -> list[dict[str, Any]]:
        """This service's outbox rows of one type whose data has these values."""
        return await outbox_events(self.engine, event_type, **data)


@pytest.fixture
def inv(
    client: httpx.AsyncClient,
    inventory_db: AsyncEngine,
    token_issuer: TokenIssuer,
    product_ids: dict[str, uuid.UUID],
) -> Inventory:
    return Inventory(client, inventory_db, token_issuer, product_ids)
