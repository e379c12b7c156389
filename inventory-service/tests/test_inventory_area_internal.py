"""inventory's /internal answers about places and products: which vendors have a depot
inside an area (admin-service, for a shortage's recipients) and each product's category
(order-service, for which products a shortage covers). Only the named callers get them."""

from __future__ import annotations

import random
import uuid
from typing import TYPE_CHECKING

import httpx

from flow_shared.testing.infra import caller_key

if TYPE_CHECKING:
    from conftest import Inventory

ADMIN = {"X-Service-Key": caller_key("admin-service")}
ORDERS = {"X-Service-Key": caller_key("order-service")}


async def test_admin_service_learns_the_vendors_with_a_depot_inside_an_area(
    inv: Inventory, client: httpx.AsyncClient
) -> None:
    # A spot of our own, away from every other test's depots.
    lat, lon = random.uniform(-60, -45), random.uniform(-170, -100)
    inside, also_inside, outside = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await inv.depot(inside, lat=lat, lon=lon)
    await inv.depot(inside, lat=lat + 0.01, lon=lon)  # a second depot: named once
    await inv.depot(also_inside, lat=lat - 0.05, lon=lon)  # about 5.6 km south
    await inv.depot(outside, lat=lat + 0.2, lon=lon)  # about 22 km north
    params = {"lat": lat, "lon": lon, "radius_km": 10}

    response = await client.get("/internal/depots/vendors-within", params=params, headers=ADMIN)
    refused = await client.get("/internal/depots/vendors-within", params=params, headers=ORDERS)

    assert response.status_code == 200, response.text
    assert sorted(response.json()["vendor_ids"]) == sorted([str(inside), str(also_inside)])
    assert refused.status_code == 403


async def test_order_service_learns_the_category_of_products(
    inv: Inventory, client: httpx.AsyncClient
) -> None:
    some = list(inv.products.values())[:2]
    ids = ",".join(str(p) for p in [*some, uuid.uuid4()])

    response = await client.get("/internal/products", params={"ids": ids}, headers=ORDERS)
    bad = await client.get("/internal/products", params={"ids": "nope"}, headers=ORDERS)
    refused = await client.get("/internal/products", params={"ids": ids}, headers=ADMIN)

    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert sorted(i["id"] for i in items) == sorted(str(p) for p in some)
    assert all(
        i["category"] in {"oxygen_cylinder", "liquid_oxygen", "concentrator", "refill", "accessory"}
        for i in items
    )
    assert bad.status_code == 422
    assert refused.status_code == 403
