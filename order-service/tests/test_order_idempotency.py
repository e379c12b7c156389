"""Idempotency-Key on order creation: the same key and body is one order however often and
however concurrently it is sent; the same key with another body is 422."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from conftest import Fleet, OrdersDb


async def test_twenty_parallel_posts_with_one_key_make_one_order(
    client: httpx.AsyncClient, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(50)
    body = fleet.order_body(vendor, depot, [(product, 2)])
    headers = {**hospital.headers, "Idempotency-Key": f"order-{uuid.uuid4()}"}

    responses = await asyncio.gather(
        *(client.post("/api/v1/orders", json=body, headers=headers) for _ in range(20))
    )

    assert [r.status_code for r in responses] == [201] * 20
    bodies = [r.json() for r in responses]
    assert all(b == bodies[0] for b in bodies)
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 19
    order = bodies[0]
    assert await orders_db.order_ids_of(hospital.org_id) == [order["id"]]
    assert len(fleet.inventory.calls("POST", "/internal/reservations")) == 1
    assert len(fleet.pricing.calls("POST", "/internal/quotes")) == 1
    assert [e["type"] for e in await orders_db.events_of(order["id"])] == ["order.placed"]
    assert depot.available(product) == 48


async def test_a_later_replay_returns_the_stored_answer_and_another_body_is_422(
    client: httpx.AsyncClient, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(50)
    body = fleet.order_body(vendor, depot, [(product, 2)])
    headers = {**hospital.headers, "Idempotency-Key": "nightly-restock-42"}
    first = await client.post("/api/v1/orders", json=body, headers=headers)
    assert first.status_code == 201
    # The order moves on; a replay still answers what the first request answered.
    confirmed = await client.post(
        f"/api/v1/orders/{first.json()['id']}/confirm", json={}, headers=vendor.headers
    )
    assert confirmed.status_code == 200

    replay = await client.post("/api/v1/orders", json=body, headers=headers)
    other_body = fleet.order_body(vendor, depot, [(product, 3)])
    reused = await client.post("/api/v1/orders", json=other_body, headers=headers)

    assert replay.status_code == 201
    assert replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert reused.status_code == 422
    assert reused.json()["type"].endswith("/idempotency-key-reused")
    assert await orders_db.order_ids_of(hospital.org_id) == [first.json()["id"]]
    assert len(fleet.inventory.calls("POST", "/internal/reservations")) == 1


async def test_keys_are_per_organisation(
    client: httpx.AsyncClient, fleet: Fleet, orders_db: OrdersDb
) -> None:
    first_hospital, second_hospital, vendor = fleet.hospital(), fleet.hospital(), fleet.vendor()
    product = uuid.uuid4()
    depot = fleet.depot(vendor, {product: 50})
    body = fleet.order_body(vendor, depot, [(product, 1)])
    key = {"Idempotency-Key": "order-1"}

    first = await client.post(
        "/api/v1/orders", json=body, headers={**first_hospital.headers, **key}
    )
    second = await client.post(
        "/api/v1/orders", json=body, headers={**second_hospital.headers, **key}
    )

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]
    assert await orders_db.order_ids_of(second_hospital.org_id) == [second.json()["id"]]


async def test_a_failed_attempt_stores_nothing_so_the_key_can_be_retried(
    client: httpx.AsyncClient, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(5)
    body = fleet.order_body(vendor, depot, [(product, 1)])
    headers = {**hospital.headers, "Idempotency-Key": "retry-me"}
    fleet.pricing.down = True
    failed = await client.post("/api/v1/orders", json=body, headers=headers)
    fleet.pricing.down = False

    retried = await client.post("/api/v1/orders", json=body, headers=headers)

    assert failed.status_code == 503
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers
    assert await orders_db.order_ids_of(hospital.org_id) == [retried.json()["id"]]
    assert depot.available(product) == 4


async def test_direct_orders_honour_the_key_too(
    client: httpx.AsyncClient, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, _, product, _ = fleet.stocked_depot(5, at=fleet.point(km_east=4))
    body = {
        "product_id": str(product),
        "quantity": 1,
        "delivery": {"lat": fleet.home[0], "lon": fleet.home[1]},
    }
    headers = {**hospital.headers, "Idempotency-Key": "sos-1"}

    responses = await asyncio.gather(
        *(client.post("/api/v1/orders/direct", json=body, headers=headers) for _ in range(5))
    )
    reused = await client.post(
        "/api/v1/orders/direct", json={**body, "quantity": 2}, headers=headers
    )

    assert [r.status_code for r in responses] == [201] * 5
    assert all(r.json() == responses[0].json() for r in responses)
    assert await orders_db.order_ids_of(hospital.org_id) == [responses[0].json()["order"]["id"]]
    assert reused.status_code == 422


async def test_an_invalid_key_is_422(client: httpx.AsyncClient, fleet: Fleet) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(5)

    response = await client.post(
        "/api/v1/orders",
        json=fleet.order_body(vendor, depot, [(product, 1)]),
        headers={**hospital.headers, "Idempotency-Key": "x" * 201},
    )

    assert response.status_code == 422
    assert fleet.inventory.requests == []
