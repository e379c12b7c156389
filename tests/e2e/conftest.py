"""The end-to-end tier: the real fleet, started by scripts/flowctl.py exactly as
`make up` starts it, on its own ports, database, Redis prefix and AMQP vhost.
Tests talk only to the gateway (plus a few deliberate probes of a service's port)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from flow_shared.testing.fleet import IsolatedFleet

PORT_OFFSET = int(os.environ.get("FLOW_E2E_PORT_OFFSET", "20000"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedFleet]:
    running = IsolatedFleet(
        label="e2e",
        port_offset=PORT_OFFSET,
        work_dir=tmp_path_factory.mktemp("fleet"),
        overrides={
            # Two inventory processes, so the no-oversell test races across processes.
            "WEB_CONCURRENCY_INVENTORY": "2",
            # Two order-service processes (uvicorn workers on one socket), so the allocation
            # cap test races across processes.
            "WEB_CONCURRENCY_ORDER": "2",
            # Every test reaches the gateway from 127.0.0.1: give login and register room;
            # auth-token keeps its default so the limit itself is tested.
            "RATE_LIMITS": json.dumps(
                {
                    name: {
                        "per": "ip",
                        "path_prefix": path,
                        "methods": ["POST"],
                        "requests": 300,
                        "per_seconds": 60,
                        "fail_closed": True,
                    }
                    for name, path in (
                        ("auth-login", "/api/v1/auth/login"),
                        ("auth-register", "/api/v1/auth/register"),
                    )
                }
                # The whole suite is one address: lift the per-IP budgets that every
                # request (and every refused token) counts against; api-gateway/tests
                # test them.
                | {
                    "ip": {"per": "ip", "requests": 1_000_000, "per_seconds": 60},
                    "invalid-token": None,
                }
            ),
        },
    )
    with running:
        yield running


@pytest.fixture
async def gateway(fleet: IsolatedFleet) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fleet.gateway, timeout=15) as client:
        yield client


E2E_PASSWORD = "correct horse battery staple"


def e2e_email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@e2e.flow.test"


async def register_organization(gateway: httpx.AsyncClient, kind: str) -> dict[str, Any]:
    """A new user and organisation of `kind`, registered through the gateway: the answer's
    body, with the email it was registered under."""
    email = e2e_email(kind)
    response = await gateway.post(
        "/api/v1/auth/register",
        json={
            "email": email,
            "password": E2E_PASSWORD,
            "full_name": f"E2E {kind}",
            "organization": {
                "name": f"E2E {kind} {uuid.uuid4().hex[:6]}",
                "kind": kind,
                "license_number": "LIC-42",
            },
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    body["email"] = email
    return body


async def login_headers(
    gateway: httpx.AsyncClient, email: str, password: str = E2E_PASSWORD
) -> dict[str, str]:
    """The Authorization header of a successful login through the gateway."""
    response = await gateway.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@dataclass
class Account:
    email: str
    user_id: str
    org_id: str
    headers: dict[str, str]


class Accounts:
    """Creates users through the gateway, as a client would."""

    def __init__(self, gateway: httpx.AsyncClient, fleet: IsolatedFleet) -> None:
        self.gateway = gateway
        self.fleet = fleet

    async def register(self, kind: str) -> Account:
        body = await register_organization(self.gateway, kind)
        email = body["email"]
        return Account(
            email,
            body["user"]["id"],
            body["organization"]["id"],
            await login_headers(self.gateway, email),
        )

    async def admin(self) -> dict[str, str]:
        return await login_headers(self.gateway, self.fleet.admin_email, self.fleet.admin_password)

    async def verified_vendor(self) -> Account:
        vendor = await self.register("vendor")
        verified = await self.gateway.post(
            f"/api/v1/admin/vendors/{vendor.org_id}/verify", headers=await self.admin()
        )
        assert verified.status_code == 200, verified.text
        return vendor

    async def stocked_depot(
        self,
        *,
        name: str,
        lat: float,
        lon: float,
        category: str,
        on_hand: int,
        sku: str | None = None,
    ) -> StockedDepot:
        """A verified vendor with one depot holding `on_hand` of the category's first
        product (or the one with `sku`), priced: what an order through the gateway needs
        on the vendor's side."""
        vendor = await self.verified_vendor()
        products = await self.gateway.get(
            "/api/v1/catalog/products",
            params={"category": category, "page_size": 100},
            headers=vendor.headers,
        )
        assert products.status_code == 200, products.text
        items = products.json()["items"]
        product_id = str(next(p for p in items if sku in (None, p["sku"]))["id"])
        depot = await self.gateway.post(
            "/api/v1/inventory/depots",
            headers=vendor.headers,
            json={"name": name, "lat": lat, "lon": lon, "service_radius_km": 40},
        )
        assert depot.status_code == 201, depot.text
        depot_id = str(depot.json()["id"])
        stock = await self.gateway.put(
            f"/api/v1/inventory/depots/{depot_id}/stock/{product_id}",
            headers=vendor.headers,
            json={"on_hand": on_hand, "low_stock_threshold": 2},
        )
        assert stock.status_code == 200, stock.text
        price = await self.gateway.put(
            f"/api/v1/pricing/prices/{product_id}",
            headers=vendor.headers,
            json={
                "unit_price": "950.00",
                "currency": "GBP",
                "delivery_fee_per_km": "2.00",
                "min_delivery_fee": "20.00",
                "emergency_surcharge_pct": "15",
            },
        )
        assert price.status_code == 200, price.text
        return StockedDepot(vendor, product_id, depot_id)


@dataclass
class StockedDepot:
    vendor: Account
    product_id: str
    depot_id: str

    def order_body(self, priority: str, *, quantity: int = 1, **fields: Any) -> dict[str, Any]:
        """An invoice order of `quantity` of the product from this depot; `fields` give its
        destination (`delivery` or `site_id`) and may change any other field."""
        return {
            "vendor_id": self.vendor.org_id,
            "depot_id": self.depot_id,
            "items": [{"product_id": self.product_id, "quantity": quantity}],
            "priority": priority,
            "payment_method": "invoice",
            **fields,
        }


@pytest.fixture
def accounts(gateway: httpx.AsyncClient, fleet: IsolatedFleet) -> Accounts:
    return Accounts(gateway, fleet)


async def outbox_events(fleet: IsolatedFleet, schema: str, **data: str) -> list[dict[str, Any]]:
    """The events a service wrote to its outbox (`<schema>.outbox`, kept after publishing)
    whose `data` holds every given key and value, oldest first; read as the service's own
    role. E.g. `outbox_events(fleet, "orders", sos_id=...)`."""
    connection = await asyncpg.connect(fleet.database_url(schema))
    try:
        rows = await connection.fetch(
            f"SELECT payload FROM {schema}.outbox"  # noqa: S608 - schema is ours, not input
            " WHERE payload->'data' @> $1::jsonb ORDER BY seq",
            json.dumps(data),
        )
    finally:
        await connection.close()
    return [json.loads(row["payload"]) for row in rows]


def process_exited(pid: int) -> bool:
    """The process is gone, or a zombie nobody has reaped yet (it runs no code)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"
