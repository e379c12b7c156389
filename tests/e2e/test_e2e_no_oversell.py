"""No oversell on the real fleet: concurrent orders through the gateway, two inventory processes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

DEPOT = {"lat": 52.2053, "lon": 0.1218}  # Cambridge
DELIVERY = {"lat": 52.1951, "lon": 0.1313}  # Addenbrooke's, about 1.3 km away
INITIAL_STOCK = 20


async def test_sixty_concurrent_orders_for_twenty_units(
    gateway: httpx.AsyncClient, accounts: Any
) -> None:
    stocked = await accounts.stocked_depot(
        name="Cambridge depot", **DEPOT, category="concentrator", on_hand=INITIAL_STOCK
    )
    vendor, product_id, depot_id = stocked.vendor, stocked.product_id, stocked.depot_id

    # Six hospitals: ten orders each, so no unverified hospital's allocation cap (10) bites.
    hospitals = [await accounts.register("hospital") for _ in range(6)]

    async def order(index: int) -> httpx.Response:
        hospital = hospitals[index % len(hospitals)]
        return await gateway.post(
            "/api/v1/orders",
            headers=hospital.headers,
            json=stocked.order_body("urgent", delivery=DELIVERY),
            timeout=60,
        )

    answers = await asyncio.gather(*(order(i) for i in range(60)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(201) == INITIAL_STOCK, statuses
    assert statuses.count(409) == 60 - INITIAL_STOCK, statuses
    for refused in (a for a in answers if a.status_code == 409):
        short = refused.json()["short_items"]
        assert short == [{"product_id": product_id, "requested": 1, "available": 0}]

    async def stock_row() -> dict[str, Any]:
        rows = await gateway.get(
            f"/api/v1/inventory/depots/{depot_id}/stock", headers=vendor.headers
        )
        return next(r for r in rows.json()["items"] if r["product_id"] == product_id)

    row = await stock_row()
    assert (row["on_hand"], row["reserved"], row["available"]) == (INITIAL_STOCK, INITIAL_STOCK, 0)

    placed = [a.json() for a in answers if a.status_code == 201]
    owner = {h.org_id: h for h in hospitals}
    for cancelled in placed[:5]:
        response = await gateway.post(
            f"/api/v1/orders/{cancelled['id']}/cancel",
            headers=owner[cancelled["hospital_org_id"]].headers,
            json={"reason": "duplicate request"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "cancelled"
    for delivered in placed[5:]:
        for action in ("confirm", "dispatch", "deliver"):
            response = await gateway.post(
                f"/api/v1/orders/{delivered['id']}/{action}", headers=vendor.headers, json={}
            )
            assert response.status_code == 200, response.text
        assert response.json()["status"] == "delivered"

    row = await stock_row()
    assert row["on_hand"] == INITIAL_STOCK - 15
    assert row["reserved"] == 0
    assert row["available"] == INITIAL_STOCK - 15
