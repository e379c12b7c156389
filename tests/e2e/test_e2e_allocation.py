"""Fair allocation on the real fleet: 50 orders from one hospital for one product, fired at
once through the gateway at two order-service processes, never take it past its cap (the
unverified default, 10): exactly the cap is accepted, the rest are 409
allocation-cap-exceeded, GET /allocation shows those open units, and a cancellation frees
its units. A platform admin's override then raises the cap."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

DEPOT = {"lat": 52.2053, "lon": 0.1218}  # Cambridge
DELIVERY = {"lat": 52.1951, "lon": 0.1313}
CAP = 10  # ALLOCATION_CAP_UNVERIFIED's default: a new hospital is not verified
ORDERS = 50


async def test_fifty_concurrent_orders_never_pass_the_hospitals_cap(
    gateway: httpx.AsyncClient, accounts: Any
) -> None:
    stocked = await accounts.stocked_depot(
        name="Cambridge allocation depot", **DEPOT, category="concentrator", on_hand=500
    )
    vendor, product_id, depot_id = stocked.vendor, stocked.product_id, stocked.depot_id
    hospital = await accounts.register("hospital")

    async def order(priority: str = "urgent") -> httpx.Response:
        return await gateway.post(
            "/api/v1/orders",
            headers=hospital.headers,
            json=stocked.order_body(priority, delivery=DELIVERY),
            timeout=60,
        )

    async def allocation() -> list[dict[str, Any]]:
        response = await gateway.get("/api/v1/allocation", headers=hospital.headers)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    priorities = ("routine", "urgent", "emergency")
    answers = await asyncio.gather(*(order(priorities[i % 3]) for i in range(ORDERS)))

    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(201) == CAP, statuses
    assert statuses.count(409) == ORDERS - CAP, statuses
    for refused in (a for a in answers if a.status_code == 409):
        body = refused.json()
        assert body["type"].endswith("/allocation-cap-exceeded"), body
        assert (body["product_id"], body["cap"], body["requested"]) == (product_id, CAP, 1)
        assert body["open"] == CAP
    assert await allocation() == [
        {"product_id": product_id, "cap": CAP, "open_units": CAP, "source": "default_unverified"}
    ]
    # Only the accepted orders hold stock.
    rows = await gateway.get(f"/api/v1/inventory/depots/{depot_id}/stock", headers=vendor.headers)
    row = next(r for r in rows.json()["items"] if r["product_id"] == product_id)
    assert row["reserved"] == CAP

    placed = next(a.json() for a in answers if a.status_code == 201)
    cancelled = await gateway.post(
        f"/api/v1/orders/{placed['id']}/cancel", headers=hospital.headers, json={}
    )
    assert cancelled.status_code == 200, cancelled.text
    assert (await allocation())[0]["open_units"] == CAP - 1
    assert (await order()).status_code == 201
    assert (await order()).status_code == 409

    admin = await accounts.admin()
    override = await gateway.put(
        f"/api/v1/admin/organizations/{hospital.org_id}/allocation",
        headers=admin,
        json={"caps": [{"product_id": product_id, "units": CAP + 2}]},
    )
    assert override.status_code == 200, override.text
    assert override.json()["items"] == [
        {"product_id": product_id, "cap": CAP + 2, "open_units": CAP, "source": "override"}
    ]
    assert [(await order()).status_code for _ in range(3)] == [201, 201, 409]
