"""An order whose total Flow cannot hold (pricing answers 422 amount-too-large) is the
hospital's 422, not a 502 "bad upstream" - and leaves no reservation or order behind."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from conftest import Fleet, OrdersDb


async def test_an_order_too_large_to_price_is_422_and_leaves_nothing(
    client: httpx.AsyncClient, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(100_000, price="9999999999.99")

    response = await client.post(
        "/api/v1/orders",
        json=fleet.order_body(vendor, depot, [(product, 100_000)]),
        headers=hospital.headers,
    )

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/amount-too-large")
    assert await orders_db.order_ids_of(hospital.org_id) == []
    assert [r.status for r in fleet.inventory.reservations.values()] in ([], ["released"])
