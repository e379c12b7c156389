"""POST /api/v1/orders: the saga's happy path, prices from the server, and refusals."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from conftest import Fleet, OrdersDb, PlaceOrder


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_order_is_reserved_quoted_and_placed_with_the_quote_prices(
    client: httpx.AsyncClient, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, vendor = fleet.hospital(), fleet.vendor()
    cylinder, regulator = uuid.uuid4(), uuid.uuid4()
    depot = fleet.depot(vendor, {cylinder: 10, regulator: 5}, price="100.00")
    fleet.pricing.prices[(vendor.org_id, regulator)] = Decimal("12.50")
    body = fleet.order_body(
        vendor, depot, [(cylinder, 3), (regulator, 2)], priority="emergency", notes="ICU"
    )

    response = await client.post(
        "/api/v1/orders", json=body, headers=hospital.with_request_id("req-place-1")
    )

    assert response.status_code == 201, response.text
    order = response.json()
    assert response.headers["Location"] == f"/api/v1/orders/{order['id']}"
    assert order["status"] == "placed"
    assert order["hospital_org_id"] == str(hospital.org_id)
    assert order["placed_by"] == str(hospital.user_id)
    assert (order["vendor_id"], order["depot_id"]) == (str(vendor.org_id), str(depot.depot_id))
    assert order["delivery"] == {
        "lat": fleet.home[0],
        "lon": fleet.home[1],
        "address": "Ward 3, Lagos General",
    }
    assert order["items"] == [
        {
            "product_id": str(cylinder),
            "quantity": 3,
            "unit_price": "100.00",
            "line_total": "300.00",
            "deposit_per_unit": "0.00",
        },
        {
            "product_id": str(regulator),
            "quantity": 2,
            "unit_price": "12.50",
            "line_total": "25.00",
            "deposit_per_unit": "0.00",
        },
    ]
    # 325.00 + 25.00 fee + 32.50 emergency surcharge, + 5 % tax: strings, exact to the cent.
    assert (order["subtotal"], order["delivery_fee"], order["surcharge"]) == (
        "325.00",
        "25.00",
        "32.50",
    )
    assert (order["tax"], order["total"], order["currency"]) == ("19.13", "401.63", "NGN")
    quote = fleet.pricing.quotes[order["quote_id"]]
    assert quote["total"] == order["total"]

    reservation = fleet.inventory.reservation(order["reservation_id"])
    assert reservation.status == "held"
    assert reservation.order_id == uuid.UUID(order["id"])
    assert reservation.items == {cylinder: 3, regulator: 2}
    assert depot.available(cylinder) == 7

    assert [(h["status"], h["actor"]) for h in order["status_history"]] == [
        ("placed", str(hospital.user_id))
    ]
    # Emergency orders must be confirmed within 15 minutes; the hold outlives that.
    window = at(order["expires_at"]) - at(order["created_at"])
    assert window == timedelta(minutes=15)
    assert reservation.expires_at > at(order["expires_at"])

    events = await orders_db.events_of(order["id"])
    assert [e["type"] for e in events] == ["order.placed"]
    placed = events[0]
    assert placed["correlation_id"] == "req-place-1"
    assert placed["producer"] == "order-service"
    assert placed["data"]["total"] == "401.63"
    assert placed["data"]["items"] == order["items"]
    assert placed["data"]["actor_id"] == str(hospital.user_id)
    assert {k: placed["data"][k] for k in ("status", "priority", "payment_method")} == {
        "status": "placed",
        "priority": "emergency",
        "payment_method": "invoice",
    }

    fetched = await client.get(f"/api/v1/orders/{order['id']}", headers=hospital.headers)
    assert fetched.status_code == 200
    assert fetched.json() == order


@pytest.mark.parametrize(
    ("priority", "window"),
    # Routine holds are short (SPEC, fair allocation: ROUTINE_HOLD_MINUTES, 120).
    [("routine", timedelta(minutes=120)), ("urgent", timedelta(hours=1))],
)
async def test_confirmation_window_follows_priority(
    client: httpx.AsyncClient,
    fleet: Fleet,
    place_order: PlaceOrder,
    priority: str,
    window: timedelta,
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(4)

    order = await place_order(
        hospital, fleet.order_body(vendor, depot, [(product, 1)], priority=priority)
    )

    assert at(order["expires_at"]) - at(order["created_at"]) == window
    assert order["surcharge"] == "0.00"


async def test_a_saved_site_is_resolved_for_the_hospitals_own_organisation_only(
    client: httpx.AsyncClient, fleet: Fleet, place_order: PlaceOrder, orders_db: OrdersDb
) -> None:
    hospital, other_hospital, vendor = fleet.hospital(), fleet.hospital(), fleet.vendor()
    product = uuid.uuid4()
    depot = fleet.depot(vendor, {product: 4})
    site_id = fleet.location.add_site(hospital.org_id, 6.60, 3.35)
    body = fleet.order_body(vendor, depot, [(product, 1)], site_id=str(site_id))
    del body["delivery"]

    order = await place_order(hospital, body)
    refused = await client.post("/api/v1/orders", json=body, headers=other_hospital.headers)

    assert order["site_id"] == str(site_id)
    assert order["delivery"] == {"lat": 6.60, "lon": 3.35, "address": "1 Hospital Road, Lagos"}
    assert refused.status_code == 404
    assert refused.json()["type"].endswith("/site-not-found")
    assert await orders_db.order_ids_of(other_hospital.org_id) == []


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda b: b.update(total="1.00"), id="total"),
        pytest.param(lambda b: b["items"][0].update(unit_price="0.01"), id="unit_price"),
        pytest.param(lambda b: b.update(subtotal="1.00", delivery_fee="0.00"), id="subtotal"),
    ],
)
async def test_client_sent_prices_are_refused(
    client: httpx.AsyncClient, fleet: Fleet, tamper: object
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(4)
    body = fleet.order_body(vendor, depot, [(product, 1)])
    assert callable(tamper)
    tamper(body)

    response = await client.post("/api/v1/orders", json=body, headers=hospital.headers)

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    # Refused before any other service was asked anything.
    assert fleet.inventory.requests == []
    assert fleet.pricing.requests == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"items": []}, "at least 1"),
        ({"items": [{"product_id": str(uuid.uuid4()), "quantity": 0}]}, "greater than 0"),
        ({"items": [{"product_id": str(uuid.uuid4()), "quantity": 1.5}]}, "integer"),
        ({"items": [{"product_id": str(uuid.uuid4()), "quantity": 1}] * 21}, "at most 20"),
        ({"site_id": str(uuid.uuid4())}, "exactly one of site_id or delivery"),
        ({"delivery": None}, "exactly one of site_id or delivery"),
        ({"payment_method": "card"}, "card_token is required"),
        ({"card_token": "tok_123"}, "only accepted when payment_method is card"),
        ({"priority": "whenever"}, "routine"),
        ({"payment_method": "barter"}, "invoice"),
        ({"delivery": {"lat": 91, "lon": 3.0}}, "less than or equal to 90"),
    ],
)
async def test_invalid_order_bodies_are_422_with_the_reason(
    client: httpx.AsyncClient, fleet: Fleet, change: dict[str, object], message: str
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(4)
    body = fleet.order_body(vendor, depot, [(product, 1)], **change)

    response = await client.post("/api/v1/orders", json=body, headers=hospital.headers)

    assert response.status_code == 422
    assert any(message in error["msg"] for error in response.json()["errors"]), response.text
    assert fleet.inventory.requests == []


async def test_card_payment_needs_a_token_that_is_never_stored_and_only_sent_to_payments(
    client: httpx.AsyncClient,
    fleet: Fleet,
    place_order: PlaceOrder,
    orders_db: OrdersDb,
    orders_engine: AsyncEngine,
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(4)
    token = f"tok_{uuid.uuid4().hex}"

    order = await place_order(
        hospital,
        fleet.order_body(vendor, depot, [(product, 1)], payment_method="card", card_token=token),
    )

    assert order["payment_method"] == "card"
    assert token not in str(order)
    async with orders_engine.connect() as conn:
        stored = await conn.scalar(
            text(
                "SELECT row_to_json(o)::text || coalesce((SELECT json_agg(i)::text "
                "FROM orders.order_items i WHERE i.order_id = o.id), '') "
                "FROM orders.orders o WHERE o.id = :id"
            ),
            {"id": uuid.UUID(order["id"])},
        )
    assert stored is not None
    assert token not in stored
    # Only payment-service gets it (over its internal API); no event carries it.
    assert fleet.payment.card_tokens == {uuid.UUID(order["id"]): token}
    cancelled = await client.post(f"/api/v1/orders/{order['id']}/cancel", headers=hospital.headers)
    assert cancelled.status_code == 200
    events = await orders_db.events_of(order["id"])
    assert [e["type"] for e in events] == ["order.placed", "order.cancelled"]
    assert token not in str(events)


@pytest.mark.parametrize(
    ("kind", "role"), [("vendor", "org_admin"), ("platform", "platform_admin")]
)
async def test_only_hospitals_place_orders(
    client: httpx.AsyncClient, fleet: Fleet, kind: str, role: str
) -> None:
    vendor = fleet.vendor()
    product = uuid.uuid4()
    depot = fleet.depot(vendor, {product: 4})

    response = await client.post(
        "/api/v1/orders",
        json=fleet.order_body(vendor, depot, [(product, 1)]),
        headers=fleet.org(kind, role).headers,
    )

    assert response.status_code == 403
    assert fleet.inventory.requests == []


async def test_orders_need_a_token(client: httpx.AsyncClient, fleet: Fleet) -> None:
    vendor = fleet.vendor()
    product = uuid.uuid4()
    depot = fleet.depot(vendor, {product: 4})

    response = await client.post(
        "/api/v1/orders", json=fleet.order_body(vendor, depot, [(product, 1)])
    )

    assert response.status_code == 401


async def test_short_stock_is_409_with_the_short_items_and_leaves_nothing(
    client: httpx.AsyncClient, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, vendor = fleet.hospital(), fleet.vendor()
    product, other = uuid.uuid4(), uuid.uuid4()
    depot = fleet.depot(vendor, {product: 3, other: 9})
    # Two lines of one product that together exceed the stock.
    body = fleet.order_body(vendor, depot, [(product, 2), (product, 2), (other, 1)])

    response = await client.post("/api/v1/orders", json=body, headers=hospital.headers)

    assert response.status_code == 409
    problem = response.json()
    assert problem["type"].endswith("/insufficient-stock")
    assert problem["short_items"] == [{"product_id": str(product), "requested": 4, "available": 3}]
    assert await orders_db.order_ids_of(hospital.org_id) == []
    assert fleet.pricing.requests == []
    assert depot.available(product) == 3


async def test_unknown_depot_is_404(
    client: httpx.AsyncClient, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(3)
    body = fleet.order_body(vendor, depot, [(product, 1)], depot_id=str(uuid.uuid4()))

    response = await client.post("/api/v1/orders", json=body, headers=hospital.headers)

    assert response.status_code == 404
    assert response.json()["type"].endswith("/depot-or-product-not-found")
    assert await orders_db.order_ids_of(hospital.org_id) == []


async def test_a_depot_of_another_vendor_is_404_and_its_hold_is_given_back(
    client: httpx.AsyncClient, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, vendor, other_vendor = fleet.hospital(), fleet.vendor(), fleet.vendor()
    product = uuid.uuid4()
    others_depot = fleet.depot(other_vendor, {product: 3})
    body = fleet.order_body(vendor, others_depot, [(product, 1)])

    response = await client.post("/api/v1/orders", json=body, headers=hospital.headers)

    assert response.status_code == 404
    assert await orders_db.order_ids_of(hospital.org_id) == []
    assert [r.status for r in fleet.inventory.reservations.values()] == ["released"]
    assert others_depot.available(product) == 3


async def test_a_suspended_vendor_is_409_vendor_unavailable(
    client: httpx.AsyncClient, fleet: Fleet
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(3)
    depot.vendor_active = False

    response = await client.post(
        "/api/v1/orders",
        json=fleet.order_body(vendor, depot, [(product, 1)]),
        headers=hospital.headers,
    )

    assert response.status_code == 409
    assert response.json()["type"].endswith("/vendor-unavailable")


async def test_an_expired_quote_is_requoted_before_the_order_is_placed(
    fleet: Fleet, place_order: PlaceOrder
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(3)
    fleet.pricing.expired_quotes_to_send = 1

    order = await place_order(hospital, fleet.order_body(vendor, depot, [(product, 1)]))

    quote_ids = list(fleet.pricing.quotes)
    assert len(quote_ids) == 2
    assert order["quote_id"] == quote_ids[1]
    assert at(fleet.pricing.quotes[order["quote_id"]]["expires_at"]) > at(order["created_at"])


async def test_a_vendors_price_change_never_alters_an_existing_order(
    client: httpx.AsyncClient, fleet: Fleet, place_order: PlaceOrder
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(10, price="100.00")
    first = await place_order(hospital, fleet.order_body(vendor, depot, [(product, 2)]))

    fleet.pricing.prices[(vendor.org_id, product)] = Decimal("180.00")
    second = await place_order(hospital, fleet.order_body(vendor, depot, [(product, 2)]))
    confirmed = await client.post(
        f"/api/v1/orders/{first['id']}/confirm", json={}, headers=vendor.headers
    )
    again = await client.get(f"/api/v1/orders/{first['id']}", headers=hospital.headers)

    assert second["items"][0]["unit_price"] == "180.00"
    assert confirmed.json()["items"] == first["items"]
    assert again.json()["items"][0]["unit_price"] == "100.00"
    assert (again.json()["subtotal"], again.json()["total"]) == (first["subtotal"], first["total"])


@pytest.mark.parametrize("token", ["4242424242424242", "tok_ABC", "tok_-x", "tok_" + "a" * 97])
async def test_a_card_number_or_malformed_token_is_refused_before_anything_happens(
    client: httpx.AsyncClient, fleet: Fleet, token: str
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(4)

    response = await client.post(
        "/api/v1/orders",
        json=fleet.order_body(
            vendor, depot, [(product, 1)], payment_method="card", card_token=token
        ),
        headers=hospital.headers,
    )

    assert response.status_code == 422
    assert token not in response.text  # never echoed back
    assert fleet.inventory.requests == []
