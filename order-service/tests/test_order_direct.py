"""POST /api/v1/orders/direct: the nearest vendor that has the stock gets the order;
ties go to the shorter ETA, then the lower price; 409 when nobody in range has it."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, NamedTuple

import httpx

if TYPE_CHECKING:
    from conftest import FakeDepot, Fleet, OrdersDb, Org


def direct_body(fleet: Fleet, product: uuid.UUID, quantity: int, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "product_id": str(product),
        "quantity": quantity,
        "delivery": {"lat": fleet.home[0], "lon": fleet.home[1], "address": "A&E bay 2"},
    }
    body.update(fields)
    return body


async def order_direct(
    client: httpx.AsyncClient, fleet: Fleet, hospital: Org, product: uuid.UUID, quantity: int
) -> httpx.Response:
    return await client.post(
        "/api/v1/orders/direct",
        json=direct_body(fleet, product, quantity),
        headers=hospital.headers,
    )


class NearAndNext(NamedTuple):
    """A hospital, and a product two vendors hold 4 of: at 2 km (near) and at 6 km (next)."""

    hospital: Org
    product: uuid.UUID
    near_depot: FakeDepot
    next_depot: FakeDepot


def near_and_next(fleet: Fleet) -> NearAndNext:
    hospital, near, next_ = fleet.hospital(), fleet.vendor(), fleet.vendor()
    product = uuid.uuid4()
    near_depot = fleet.depot(near, {product: 4}, at=fleet.point(km_east=2))
    next_depot = fleet.depot(next_, {product: 4}, at=fleet.point(km_east=6))
    return NearAndNext(hospital, product, near_depot, next_depot)


async def test_the_nearest_vendor_with_enough_stock_gets_the_order(
    client: httpx.AsyncClient, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital = fleet.hospital()
    near_but_short, middle, far = fleet.vendor(), fleet.vendor(), fleet.vendor()
    product = uuid.uuid4()
    fleet.depot(near_but_short, {product: 2}, at=fleet.point(km_north=1))
    chosen = fleet.depot(middle, {product: 10}, at=fleet.point(km_east=5), price="150.00")
    fleet.depot(far, {product: 10}, at=fleet.point(km_north=-9), price="90.00")

    response = await client.post(
        "/api/v1/orders/direct",
        json=direct_body(fleet, product, 3),
        headers=hospital.with_request_id("sos-req-1"),
    )

    assert response.status_code == 201, response.text
    answer = response.json()
    order, selection = answer["order"], answer["selection"]
    assert (selection["vendor_id"], selection["depot_id"]) == (
        str(middle.org_id),
        str(chosen.depot_id),
    )
    # Two depots in range have 3 available; the nearer one without enough is not a candidate.
    assert selection["candidates_considered"] == 2
    assert 6.0 <= selection["distance_km"] <= 7.0  # ~5 km straight, x1.3 by road
    assert selection["eta_min"] == round(selection["distance_km"] / 60 * 60) + 10
    assert order["status"] == "placed"
    assert order["priority"] == "emergency"  # the default for direct orders
    assert order["items"][0]["unit_price"] == "150.00"
    assert fleet.inventory.reservation(order["reservation_id"]).depot_id == chosen.depot_id
    assert chosen.available(product) == 7
    assert response.headers["Location"] == f"/api/v1/orders/{order['id']}"
    events = await orders_db.events_of(order["id"])
    assert [(e["type"], e["correlation_id"]) for e in events] == [("order.placed", "sos-req-1")]
    # The nearby search asked only for depots that have the whole quantity.
    [nearby] = fleet.inventory.calls("GET", "/internal/catalog/nearby")
    assert nearby.url.params["min_quantity"] == "3"
    assert nearby.url.params["radius_km"] == "50.0"


async def test_equally_near_vendors_are_decided_by_eta(
    client: httpx.AsyncClient, fleet: Fleet
) -> None:
    hospital, slow, fast = fleet.hospital(), fleet.vendor(), fleet.vendor()
    product = uuid.uuid4()
    slow_depot = fleet.depot(slow, {product: 5}, at=fleet.point(km_east=4), price="50.00")
    fast_depot = fleet.depot(fast, {product: 5}, at=fleet.point(km_east=-4), price="90.00")
    fleet.location.duration_overrides[str(slow_depot.depot_id)] = 35
    fleet.location.duration_overrides[str(fast_depot.depot_id)] = 18

    response = await order_direct(client, fleet, hospital, product, 1)

    assert response.status_code == 201, response.text
    selection = response.json()["selection"]
    assert selection["depot_id"] == str(fast_depot.depot_id)
    assert selection["eta_min"] == 18
    # Not tied on distance and ETA together: no price was needed to decide.
    assert len(fleet.pricing.calls("POST", "/internal/quotes")) == 1


async def test_equally_near_and_fast_vendors_are_decided_by_price(
    client: httpx.AsyncClient, fleet: Fleet
) -> None:
    hospital, dear, cheap = fleet.hospital(), fleet.vendor(), fleet.vendor()
    product = uuid.uuid4()
    fleet.depot(dear, {product: 5}, at=fleet.point(km_north=4), price="120.00")
    cheap_depot = fleet.depot(cheap, {product: 5}, at=fleet.point(km_north=-4), price="95.00")

    response = await order_direct(client, fleet, hospital, product, 2)

    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["selection"]["depot_id"] == str(cheap_depot.depot_id)
    assert answer["order"]["items"][0]["unit_price"] == "95.00"
    # Both tied candidates were priced once; the winner's quote was used for the order.
    quotes = fleet.pricing.calls("POST", "/internal/quotes")
    assert len(quotes) == 2
    assert answer["order"]["quote_id"] in fleet.pricing.quotes


async def test_when_the_nearest_stock_is_taken_meanwhile_the_next_vendor_gets_it(
    client: httpx.AsyncClient, fleet: Fleet
) -> None:
    hospital, product, near_depot, next_depot = near_and_next(fleet)

    def another_hospital_buys_it_all(depot: Any) -> None:
        if depot is near_depot:
            depot.reserved[product] = depot.on_hand[product]

    fleet.inventory.before_reserve = another_hospital_buys_it_all

    response = await order_direct(client, fleet, hospital, product, 3)

    assert response.status_code == 201, response.text
    assert response.json()["selection"]["depot_id"] == str(next_depot.depot_id)
    assert response.json()["selection"]["candidates_considered"] == 2
    assert next_depot.available(product) == 1


async def test_a_vendor_that_cannot_serve_the_address_is_skipped_and_its_hold_released(
    client: httpx.AsyncClient, fleet: Fleet
) -> None:
    hospital, product, near_depot, next_depot = near_and_next(fleet)
    fleet.pricing.out_of_range_depots.add(near_depot.depot_id)

    response = await order_direct(client, fleet, hospital, product, 2)

    assert response.status_code == 201, response.text
    assert response.json()["selection"]["depot_id"] == str(next_depot.depot_id)
    statuses = {r.depot_id: r.status for r in fleet.inventory.reservations.values()}
    assert statuses == {near_depot.depot_id: "released", next_depot.depot_id: "held"}
    assert near_depot.available(product) == 4


async def test_a_single_vendor_that_cannot_serve_the_address_is_409_quote_refused(
    client: httpx.AsyncClient, fleet: Fleet
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(4)
    fleet.pricing.out_of_range_depots.add(depot.depot_id)

    response = await client.post(
        "/api/v1/orders",
        json=fleet.order_body(vendor, depot, [(product, 1)]),
        headers=hospital.headers,
    )

    assert response.status_code == 409
    assert response.json()["type"].endswith("/quote-refused")
    assert "delivery range" in response.json()["detail"]
    assert depot.available(product) == 4


async def test_nobody_in_range_with_the_stock_is_409(
    client: httpx.AsyncClient, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, short, far = fleet.hospital(), fleet.vendor(), fleet.vendor()
    product = uuid.uuid4()
    fleet.depot(short, {product: 1}, at=fleet.point(km_north=2))
    fleet.depot(far, {product: 40}, at=fleet.point(km_north=30))

    response = await client.post(
        "/api/v1/orders/direct",
        json=direct_body(fleet, product, 5, max_distance_km=20),
        headers=hospital.headers,
    )

    assert response.status_code == 409
    problem = response.json()
    assert problem["type"].endswith("/no-supplier-in-range")
    assert problem["candidates_considered"] == 0
    assert fleet.inventory.calls("POST", "/internal/reservations") == []
    assert await orders_db.order_ids_of(hospital.org_id) == []


async def test_without_route_estimates_the_straight_nearest_still_gets_the_emergency(
    client: httpx.AsyncClient, fleet: Fleet
) -> None:
    hospital, near, far = fleet.hospital(), fleet.vendor(), fleet.vendor()
    product = uuid.uuid4()
    near_depot = fleet.depot(near, {product: 5}, at=fleet.point(km_east=3))
    fleet.depot(far, {product: 5}, at=fleet.point(km_east=8))
    fleet.location.down = True

    response = await order_direct(client, fleet, hospital, product, 1)

    assert response.status_code == 201, response.text
    selection = response.json()["selection"]
    assert selection["depot_id"] == str(near_depot.depot_id)
    assert selection["eta_min"] is None
    assert 2.5 <= selection["distance_km"] <= 3.5


async def test_direct_orders_are_for_hospitals_and_validate_their_body(
    client: httpx.AsyncClient, fleet: Fleet
) -> None:
    product = uuid.uuid4()
    body = direct_body(fleet, product, 1)

    as_vendor = await client.post(
        "/api/v1/orders/direct", json=body, headers=fleet.vendor().headers
    )
    with_price = await client.post(
        "/api/v1/orders/direct", json={**body, "total": "1.00"}, headers=fleet.hospital().headers
    )
    zero = await client.post(
        "/api/v1/orders/direct", json={**body, "quantity": 0}, headers=fleet.hospital().headers
    )

    assert as_vendor.status_code == 403
    assert with_price.status_code == 422
    assert zero.status_code == 422
    assert fleet.inventory.requests == []
