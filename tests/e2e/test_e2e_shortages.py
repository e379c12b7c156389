"""A shortage on the real fleet: a platform admin declares one around a hospital's site;
that hospital's routine order is 409 shortage-routine-paused while an emergency one is
placed; GET /shortages?lat&lon lists it; the hospital and a vendor with a depot inside
hear of it; the admin ends it and the routine order goes through."""

from __future__ import annotations

from typing import Any

import httpx

from flow_shared.testing.polling import eventually

# Reykjavik: away from every other end-to-end test's points.
SITE = {"lat": 64.1466, "lon": -21.9426}
DEPOT = {"lat": 64.1355, "lon": -21.8954}  # about 2.6 km away


async def test_a_declared_shortage_pauses_routine_orders_in_its_area_until_it_ends(
    gateway: httpx.AsyncClient, accounts: Any
) -> None:
    stocked = await accounts.stocked_depot(
        name="Reykjavik depot", **DEPOT, category="oxygen_cylinder", on_hand=100
    )
    vendor = stocked.vendor
    hospital = await accounts.register("hospital")
    site = await gateway.post(
        "/api/v1/locations/sites",
        headers=hospital.headers,
        json={"name": "Landspitali", **SITE},
    )
    assert site.status_code == 201, site.text
    site_id = site.json()["id"]
    admin = await accounts.admin()

    async def order(priority: str) -> httpx.Response:
        return await gateway.post(
            "/api/v1/orders",
            headers=hospital.headers,
            json=stocked.order_body(priority, site_id=site_id),
        )

    declared = await gateway.post(
        "/api/v1/admin/shortages",
        headers=admin,
        json={
            "area": {**SITE, "radius_km": 15},
            "categories": ["oxygen_cylinder"],
            "note": "Plant outage",
        },
    )
    assert declared.status_code == 201, declared.text
    shortage_id = declared.json()["id"]

    try:
        # order-service learns of it from shortage.declared.
        # (Until then a routine order still goes through: polled gently, far below the cap.)
        async def paused() -> httpx.Response | None:
            answer = await order("routine")
            paused = answer.status_code == 409 and answer.json()["type"].endswith(
                "/shortage-routine-paused"
            )
            return answer if paused else None

        refused = await eventually(paused, "routine orders paused by the shortage", interval=1.0)
        assert refused.json()["shortage_id"] == shortage_id
        emergency = await order("emergency")
        assert emergency.status_code == 201, emergency.text

        listed = await gateway.get("/api/v1/shortages", params=SITE, headers=hospital.headers)
        assert listed.status_code == 200, listed.text
        assert [s["id"] for s in listed.json()["items"]] == [shortage_id]

        stats = await gateway.get("/api/v1/admin/stats", headers=admin)
        assert stats.json()["active_shortages"] >= 1

    finally:
        ended = await gateway.post(f"/api/v1/admin/shortages/{shortage_id}/end", headers=admin)
    assert ended.status_code == 200, ended.text

    async def resumed() -> httpx.Response | None:
        answer = await order("routine")
        return answer if answer.status_code == 201 else None

    await eventually(resumed, "routine orders going through once the shortage ended", interval=1.0)
    listed = await gateway.get("/api/v1/shortages", params=SITE, headers=hospital.headers)
    assert listed.json()["items"] == []

    # Everyone inside hears of it (notification-service's shortage.declared handler).
    for who, what in ((hospital, "the hospital"), (vendor, "the vendor")):

        async def told(headers: dict[str, str] = who.headers) -> list[Any] | None:
            answer = await gateway.get(
                "/api/v1/notifications", params={"page_size": 100}, headers=headers
            )
            assert answer.status_code == 200, answer.text
            found = [n for n in answer.json()["items"] if n["type"] == "shortage.declared"]
            return found or None

        await eventually(told, f"{what} notified of the shortage")
