"""Every failure of the placement saga compensates: no order without a hold, no hold left
behind without an order; a dead upstream is a 503 naming it, and a breaker stops the waiting."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from conftest import Fleet, OrderAppFactory, OrdersDb, PlaceOrder


def assert_unavailable(response: httpx.Response, upstream: str, code: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith(f"/{code}")
    assert upstream in problem["detail"]
    assert problem["correlation_id"] == response.headers["X-Request-ID"]


async def test_pricing_down_is_503_and_the_reservation_is_released(
    client: httpx.AsyncClient, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, vendor = fleet.hospital(), fleet.vendor()
    product = uuid.uuid4()
    depot = fleet.depot(vendor, {product: 5})
    fleet.pricing.down = True

    response = await client.post(
        "/api/v1/orders",
        json=fleet.order_body(vendor, depot, [(product, 2)]),
        headers=hospital.headers,
    )

    assert_unavailable(response, "pricing-service", "upstream-unavailable")
    assert await orders_db.order_ids_of(hospital.org_id) == []
    [reservation] = fleet.inventory.reservations.values()
    assert reservation.status == "released"
    released = fleet.inventory.calls("POST", r"/internal/reservations/[^/]+/release")
    assert [r.url.path for r in released] == [
        f"/internal/reservations/{reservation.reservation_id}/release"
    ]
    assert depot.available(product) == 5
    # A quote is a POST: it is never sent twice.
    assert len(fleet.pricing.requests) == 1


async def test_no_price_is_409_and_the_reservation_is_released(
    client: httpx.AsyncClient, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, vendor = fleet.hospital(), fleet.vendor()
    product = uuid.uuid4()
    depot = fleet.depot(vendor, {product: 5})
    del fleet.pricing.prices[(vendor.org_id, product)]

    response = await client.post(
        "/api/v1/orders",
        json=fleet.order_body(vendor, depot, [(product, 2)]),
        headers=hospital.headers,
    )

    assert response.status_code == 409
    assert response.json()["type"].endswith("/no-price")
    assert response.json()["product_ids"] == [str(product)]
    assert await orders_db.order_ids_of(hospital.org_id) == []
    assert [r.status for r in fleet.inventory.reservations.values()] == ["released"]
    assert depot.available(product) == 5


async def test_a_failing_commit_releases_the_reservation(
    client: httpx.AsyncClient, fleet: Fleet, orders_db: OrdersDb, place_order: PlaceOrder
) -> None:
    hospital, vendor = fleet.hospital(), fleet.vendor()
    product = uuid.uuid4()
    depot = fleet.depot(vendor, {product: 5})
    first = await place_order(hospital, fleet.order_body(vendor, depot, [(product, 1)]))
    # inventory-service misbehaves: the next hold reuses an id that another order holds,
    # so the database refuses the new order when the transaction commits.
    fleet.inventory.next_reservation_id = uuid.UUID(first["reservation_id"])

    response = await client.post(
        "/api/v1/orders",
        json=fleet.order_body(vendor, depot, [(product, 2)]),
        headers=hospital.headers,
    )

    assert response.status_code == 500
    assert "reservation" not in response.text.lower()  # no SQL or constraint names leak
    assert await orders_db.order_ids_of(hospital.org_id) == [first["id"]]
    released = fleet.inventory.calls("POST", r"/internal/reservations/[^/]+/release")
    assert [r.url.path for r in released] == [
        f"/internal/reservations/{first['reservation_id']}/release"
    ]
    assert await orders_db.events_of(first["id"]) != []


async def test_inventory_down_opens_the_breaker_fails_fast_and_recovers(
    order_app_for: OrderAppFactory, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, vendor = fleet.hospital(), fleet.vendor()
    product = uuid.uuid4()
    depot = fleet.depot(vendor, {product: 5})
    body = fleet.order_body(vendor, depot, [(product, 1)])
    fleet.inventory.down = True

    async with order_app_for(
        breaker_failure_threshold=3, breaker_reset_timeout_seconds=0.3
    ) as opened:
        post = opened.client.post
        first = await post("/api/v1/orders", json=body, headers=hospital.headers)
        assert_unavailable(first, "inventory-service", "upstream-unavailable")
        # Failures keep coming until the breaker opens (a few at most).
        for _ in range(3):
            response = await post("/api/v1/orders", json=body, headers=hospital.headers)
            if response.json()["type"].endswith("/circuit-open"):
                break
        assert_unavailable(response, "inventory-service", "circuit-open")
        assert "Retry-After" in response.headers

        attempts = len(fleet.inventory.requests)
        fast = await post("/api/v1/orders", json=body, headers=hospital.headers)
        assert_unavailable(fast, "inventory-service", "circuit-open")
        assert len(fleet.inventory.requests) == attempts  # refused without calling it
        assert fleet.pricing.requests == []
        assert await orders_db.order_ids_of(hospital.org_id) == []

        fleet.inventory.down = False
        await asyncio.sleep(0.4)  # past the breaker's reset timeout: a probe may go
        recovered = await post("/api/v1/orders", json=body, headers=hospital.headers)

    assert recovered.status_code == 201, recovered.text
    assert await orders_db.order_ids_of(hospital.org_id) == [recovered.json()["id"]]


async def test_a_reservation_whose_answer_was_lost_is_found_and_released(
    client: httpx.AsyncClient, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, vendor = fleet.hospital(), fleet.vendor()
    product = uuid.uuid4()
    depot = fleet.depot(vendor, {product: 5})
    fleet.inventory.lose_answer_to.add("/internal/reservations")

    response = await client.post(
        "/api/v1/orders",
        json=fleet.order_body(vendor, depot, [(product, 2)]),
        headers=hospital.headers,
    )

    assert_unavailable(response, "inventory-service", "upstream-unavailable")
    # Asked twice: the second (same order id) found the hold the first had made.
    assert len(fleet.inventory.calls("POST", "/internal/reservations")) == 2
    assert await orders_db.order_ids_of(hospital.org_id) == []
    [reservation] = fleet.inventory.reservations.values()
    assert reservation.status == "released"
    assert depot.available(product) == 5


def refuse_releases(request: httpx.Request) -> None:
    if request.url.path.endswith("/release"):
        raise httpx.ConnectError("connection refused", request=request)


async def test_a_hold_that_cannot_be_released_at_once_is_released_by_the_sweeper(
    order_app_for: OrderAppFactory, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, vendor = fleet.hospital(), fleet.vendor()
    product = uuid.uuid4()
    depot = fleet.depot(vendor, {product: 5})
    fleet.pricing.down = True
    fleet.inventory.on_request = refuse_releases

    async with order_app_for(release_retry_after_seconds=0) as opened:
        response = await opened.client.post(
            "/api/v1/orders",
            json=fleet.order_body(vendor, depot, [(product, 2)]),
            headers=hospital.headers,
        )
        [reservation] = fleet.inventory.reservations.values()
        held_while_refused = reservation.status
        [abandoned] = await orders_db.abandoned_holds_at(depot.depot_id)

        fleet.inventory.on_request = None
        # The app's own sweeper may also run now; whichever run gets there, it is released once.
        await opened.sweep()

    assert response.status_code == 503
    assert await orders_db.order_ids_of(hospital.org_id) == []
    assert held_while_refused == "held"
    assert abandoned == {
        "order_id": reservation.order_id,
        "reservation_id": reservation.reservation_id,
    }
    assert reservation.status == "released"
    assert depot.available(product) == 5
    assert await orders_db.abandoned_holds_at(depot.depot_id) == []


async def test_a_lost_reservation_answer_with_inventory_then_down_is_found_later(
    order_app_for: OrderAppFactory, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, vendor = fleet.hospital(), fleet.vendor()
    product = uuid.uuid4()
    depot = fleet.depot(vendor, {product: 5})
    fleet.inventory.lose_answer_to.add("/internal/reservations")
    reserve_calls = []

    def down_after_the_first_reservation(request: httpx.Request) -> None:
        if request.url.path == "/internal/reservations":
            reserve_calls.append(request)
            if len(reserve_calls) == 2:
                raise httpx.ConnectError("connection refused", request=request)

    fleet.inventory.on_request = down_after_the_first_reservation

    async with order_app_for(release_retry_after_seconds=0) as opened:
        # Only the explicit sweep below may find the hold: the app's own first sweep,
        # racing the request, could release it before the "still held" check.
        await opened.app.state.periodic_tasks["order-sweeper"].stop()
        response = await opened.client.post(
            "/api/v1/orders",
            json=fleet.order_body(vendor, depot, [(product, 2)]),
            headers=hospital.headers,
        )
        [abandoned] = await orders_db.abandoned_holds_at(depot.depot_id)
        assert depot.available(product) == 3  # held, and nobody knows its id yet

        await opened.sweep()

    assert response.status_code == 503
    assert abandoned["reservation_id"] is None
    [reservation] = fleet.inventory.reservations.values()
    assert reservation.order_id == abandoned["order_id"]
    assert reservation.status == "released"
    assert depot.available(product) == 5
    assert await orders_db.abandoned_holds_at(depot.depot_id) == []
    assert await orders_db.order_ids_of(hospital.org_id) == []
