"""Order events name the site the order goes to and when it is expected there (`site_id`,
`eta`): inventory-service's oxygen runway counts inbound orders by both."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from conftest import Fleet, OrdersDb, PlaceOrder


def confirmed_at(order: dict[str, Any]) -> datetime:
    [change] = [c for c in order["status_history"] if c["status"] == "confirmed"]
    return datetime.fromisoformat(change["at"])


def at(value: str) -> datetime:
    assert value.endswith("Z"), value  # RFC3339 in UTC
    return datetime.fromisoformat(value)


async def test_events_of_a_site_order_carry_the_site_and_from_confirmation_the_eta(
    client: httpx.AsyncClient, fleet: Fleet, place_order: PlaceOrder, orders_db: OrdersDb
) -> None:
    hospital, vendor, product = fleet.hospital(), fleet.vendor(), uuid.uuid4()
    depot = fleet.depot(vendor, {product: 5})
    site_id = fleet.location.add_site(hospital.org_id, 6.60, 3.35)
    body = fleet.order_body(vendor, depot, [(product, 2)], site_id=str(site_id))
    del body["delivery"]
    order = await place_order(hospital, body)

    moves = [("confirm", {"eta_minutes": 95}), ("dispatch", None), ("deliver", None)]
    for action, move_body in moves:
        response = await client.post(
            f"/api/v1/orders/{order['id']}/{action}", json=move_body, headers=vendor.headers
        )
        assert response.status_code == 200, response.text
    expected_eta = confirmed_at(response.json()) + timedelta(minutes=95)

    events = await orders_db.events_of(order["id"])
    assert [e["type"] for e in events] == [
        "order.placed",
        "order.confirmed",
        "order.dispatched",
        "order.delivered",
    ]
    assert all(e["data"]["site_id"] == str(site_id) for e in events)
    placed, confirmed, dispatched, delivered = (e["data"] for e in events)
    assert placed["eta"] is None
    assert [at(d["eta"]) for d in (confirmed, dispatched, delivered)] == [expected_eta] * 3
    assert confirmed["eta_minutes"] == 95


async def test_a_free_address_order_has_no_site_and_no_eta_once_cancelled(
    client: httpx.AsyncClient, fleet: Fleet, place_order: PlaceOrder, orders_db: OrdersDb
) -> None:
    hospital, vendor, product = fleet.hospital(), fleet.vendor(), uuid.uuid4()
    depot = fleet.depot(vendor, {product: 5})
    order = await place_order(hospital, fleet.order_body(vendor, depot, [(product, 1)]))
    confirmed = await client.post(
        f"/api/v1/orders/{order['id']}/confirm", json={"eta_minutes": 30}, headers=vendor.headers
    )
    cancelled = await client.post(f"/api/v1/orders/{order['id']}/cancel", headers=hospital.headers)
    assert (confirmed.status_code, cancelled.status_code) == (200, 200)

    events = await orders_db.events_of(order["id"])
    assert [e["type"] for e in events] == ["order.placed", "order.confirmed", "order.cancelled"]
    assert [e["data"]["site_id"] for e in events] == [None, None, None]
    placed, confirmed_event, cancelled_event = (e["data"] for e in events)
    assert placed["eta"] is None
    assert at(confirmed_event["eta"]) == confirmed_at(confirmed.json()) + timedelta(minutes=30)
    # No longer on its way: nothing is expected at the site any more.
    assert cancelled_event["eta"] is None


async def test_a_vendor_confirmed_order_without_eta_minutes_has_a_null_eta(
    client: httpx.AsyncClient, fleet: Fleet, place_order: PlaceOrder, orders_db: OrdersDb
) -> None:
    hospital, vendor, product = fleet.hospital(), fleet.vendor(), uuid.uuid4()
    depot = fleet.depot(vendor, {product: 5})
    order = await place_order(hospital, fleet.order_body(vendor, depot, [(product, 1)]))
    confirmed = await client.post(
        f"/api/v1/orders/{order['id']}/confirm", json={}, headers=vendor.headers
    )
    assert confirmed.status_code == 200, confirmed.text

    events = await orders_db.events_of(order["id"])
    assert [e["type"] for e in events] == ["order.placed", "order.confirmed"]
    assert events[1]["data"]["eta"] is None
    assert events[1]["data"]["eta_minutes"] is None


async def test_an_sos_order_is_created_confirmed_with_the_accepted_eta(
    client: httpx.AsyncClient, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, vendor, product = fleet.hospital(), fleet.vendor(), uuid.uuid4()
    depot = fleet.depot(vendor, {product: 10}, at=fleet.point(km_north=2))
    site_id = fleet.location.add_site(hospital.org_id, *fleet.home)
    opened = await client.post(
        "/api/v1/sos",
        json={"product_id": str(product), "quantity": 3, "site_id": str(site_id)},
        headers=hospital.headers,
    )
    assert opened.status_code == 201, opened.text
    accepted = await client.post(
        f"/api/v1/sos/{opened.json()['id']}/accept",
        json={"depot_id": str(depot.depot_id), "eta_minutes": 25},
        headers=vendor.headers,
    )
    assert accepted.status_code == 201, accepted.text
    order = accepted.json()["order"]

    # The order's own events (sos.fulfilled names the order too).
    events = [e for e in await orders_db.events_of(order["id"]) if e["type"].startswith("order.")]
    assert [e["type"] for e in events] == ["order.placed", "order.confirmed"]
    assert all(e["data"]["site_id"] == str(site_id) for e in events)
    assert events[0]["data"]["eta"] is None
    confirmed = events[1]["data"]
    assert at(confirmed["eta"]) == confirmed_at(order) + timedelta(minutes=25)
    assert confirmed["eta_minutes"] == 25
    assert confirmed["sos_id"] == opened.json()["id"]
