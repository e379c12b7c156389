"""SOS broadcast (SPEC "SOS broadcast"): rings of the nearest vendors with stock, the first
acceptance wins atomically, declines and time-outs escalate once, nobody left is unfilled,
the quantity counts against the allocation cap while open, payment never blocks it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import text

from flow_shared.errors import ServiceUnavailable
from flow_shared.events.envelope import EventEnvelope
from order_service.service.payments import on_payment_failed

if TYPE_CHECKING:
    from conftest import Fleet, OrderApp, OrderAppFactory, Org
    from sqlalchemy.ext.asyncio import AsyncEngine


def sos_body(fleet: Fleet, product: uuid.UUID, quantity: int, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "product_id": str(product),
        "quantity": quantity,
        "delivery": {"lat": fleet.home[0], "lon": fleet.home[1], "address": "ICU"},
    }
    body.update(fields)
    return body


async def sos_events(engine: AsyncEngine, sos_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT payload FROM orders.outbox "
                "WHERE payload->'data'->>'sos_id' = :sos_id ORDER BY seq"
            ),
            {"sos_id": sos_id},
        )
        return [row.payload for row in rows]


async def open_units(engine: AsyncEngine, hospital: Org, product: uuid.UUID) -> int:
    async with engine.connect() as conn:
        value = await conn.scalar(
            text(
                "SELECT open_units FROM orders.allocation_usage "
                "WHERE hospital_org_id = :h AND product_id = :p"
            ),
            {"h": hospital.org_id, "p": product},
        )
        return int(value or 0)


def five_vendors(
    fleet: Fleet, product: uuid.UUID, stock: int = 10, count: int = 5
) -> list[tuple[Org, Any]]:
    """`count` vendors 1, 2, ... km north of home, nearest first."""
    vendors = []
    for km in range(1, count + 1):
        vendor = fleet.vendor()
        vendors.append((vendor, fleet.depot(vendor, {product: stock}, at=fleet.point(km_north=km))))
    return vendors


async def open_sos(
    client: httpx.AsyncClient, hospital: Org, body: dict[str, Any], **headers: str
) -> dict[str, Any]:
    response = await client.post("/api/v1/sos", json=body, headers={**hospital.headers, **headers})
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_ring_one_is_the_nearest_ring_size_vendors_by_eta_and_each_hears_it(
    client: httpx.AsyncClient, fleet: Fleet, orders_engine: AsyncEngine
) -> None:
    hospital, product = fleet.hospital(), uuid.uuid4()
    vendors = five_vendors(fleet, product)
    short = fleet.vendor()
    fleet.depot(short, {product: 1}, at=fleet.point(km_north=0.5))

    sos = await open_sos(client, hospital, sos_body(fleet, product, 3, ring_size=3))

    assert sos["status"] == "open"
    assert sos["order_id"] is None
    assert sos["quantity"] == 3
    assert sos["product_id"] == str(product)
    [ring] = sos["rings"]
    assert ring["number"] == 1
    offered = [o["vendor_id"] for o in ring["offers"]]
    assert offered == [str(v.org_id) for v, _ in vendors[:3]]
    etas = [o["eta_min"] for o in ring["offers"]]
    assert etas == sorted(etas)
    assert all(o["answer"] is None for o in ring["offers"])
    expires = datetime.fromisoformat(ring["expires_at"])
    opened = datetime.fromisoformat(ring["opened_at"])
    assert expires - opened == timedelta(seconds=180)  # the default ring_timeout_seconds
    events = await sos_events(orders_engine, sos["id"])
    assert [e["type"] for e in events] == ["sos.opened", "sos.request"]
    request = events[1]["data"]
    assert request["ring_number"] == 1
    assert [o["vendor_id"] for o in request["offers"]] == offered
    assert events[0]["data"]["ring_size"] == 3


async def test_idempotency_key_replays_and_another_body_is_422(
    client: httpx.AsyncClient, fleet: Fleet
) -> None:
    hospital, product = fleet.hospital(), uuid.uuid4()
    five_vendors(fleet, product)
    body = sos_body(fleet, product, 2)
    first = await open_sos(client, hospital, body, **{"Idempotency-Key": "sos-1"})
    again = await client.post(
        "/api/v1/sos", json=body, headers={**hospital.headers, "Idempotency-Key": "sos-1"}
    )
    assert again.status_code == 201
    assert again.json()["id"] == first["id"]
    other = await client.post(
        "/api/v1/sos",
        json=sos_body(fleet, product, 3),
        headers={**hospital.headers, "Idempotency-Key": "sos-1"},
    )
    assert other.status_code == 422
    listed = (await client.get("/api/v1/sos", headers=hospital.headers)).json()
    assert listed["total"] == 1


async def test_nobody_in_range_is_409_and_nothing_is_created(
    client: httpx.AsyncClient, fleet: Fleet, orders_engine: AsyncEngine
) -> None:
    hospital, product = fleet.hospital(), uuid.uuid4()
    far = fleet.vendor()
    fleet.depot(far, {product: 10}, at=fleet.point(km_north=80))
    response = await client.post(
        "/api/v1/sos", json=sos_body(fleet, product, 2), headers=hospital.headers
    )
    assert response.status_code == 409
    assert response.json()["type"].endswith("/no-supplier-in-range")
    assert await open_units(orders_engine, hospital, product) == 0
    assert (await client.get("/api/v1/sos", headers=hospital.headers)).json()["total"] == 0


async def test_the_minimum_ring_timeout_is_five_seconds(
    client: httpx.AsyncClient, fleet: Fleet
) -> None:
    hospital, product = fleet.hospital(), uuid.uuid4()
    five_vendors(fleet, product)
    response = await client.post(
        "/api/v1/sos",
        json=sos_body(fleet, product, 1, ring_timeout_seconds=4),
        headers=hospital.headers,
    )
    assert response.status_code == 422
    await open_sos(client, hospital, sos_body(fleet, product, 1, ring_timeout_seconds=5))


async def test_the_cap_counts_while_open_and_moves_to_the_order(
    order_app_for: OrderAppFactory, fleet: Fleet, orders_engine: AsyncEngine
) -> None:
    hospital, product = fleet.hospital(), uuid.uuid4()
    vendors = five_vendors(fleet, product)
    async with order_app_for(allocation_cap_unverified=5) as opened:
        client = opened.client
        sos = await open_sos(client, hospital, sos_body(fleet, product, 4))
        assert await open_units(orders_engine, hospital, product) == 4
        over = await client.post(
            "/api/v1/sos", json=sos_body(fleet, product, 2), headers=hospital.headers
        )
        assert over.status_code == 409
        problem = over.json()
        assert problem["type"].endswith("/allocation-cap-exceeded")
        assert (problem["cap"], problem["open"], problem["requested"]) == (5, 4, 2)

        vendor, depot = vendors[0]
        accepted = await client.post(
            f"/api/v1/sos/{sos['id']}/accept",
            json={"depot_id": str(depot.depot_id), "eta_minutes": 25},
            headers=vendor.headers,
        )
        assert accepted.status_code == 201, accepted.text
        assert await open_units(orders_engine, hospital, product) == 4  # moved, not doubled
        order = accepted.json()["order"]
        cancelled = await client.post(
            f"/api/v1/orders/{order['id']}/cancel", headers=hospital.headers
        )
        assert cancelled.status_code == 200, cancelled.text
        assert await open_units(orders_engine, hospital, product) == 0


async def test_all_offered_vendors_accept_at_once_and_exactly_one_wins(
    client: httpx.AsyncClient, fleet: Fleet, orders_engine: AsyncEngine
) -> None:
    hospital, product = fleet.hospital(), uuid.uuid4()
    vendors = five_vendors(fleet, product, count=3)
    sos = await open_sos(client, hospital, sos_body(fleet, product, 3, ring_size=3))

    answers = await asyncio.gather(
        *(
            client.post(
                f"/api/v1/sos/{sos['id']}/accept",
                json={"depot_id": str(depot.depot_id), "eta_minutes": 20},
                headers=vendor.headers,
            )
            for vendor, depot in vendors
        )
    )

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 409, 409], [a.text for a in answers]
    assert all(a.json()["type"].endswith("/sos-closed") for a in answers if a.status_code == 409)
    [won] = [a.json() for a in answers if a.status_code == 201]
    order = won["order"]
    assert won["sos"]["status"] == "fulfilled"
    assert won["sos"]["order_id"] == order["id"]
    assert order["status"] == "confirmed"
    assert order["priority"] == "emergency"
    assert order["payment_method"] == "invoice"
    assert order["eta_minutes"] == 20
    assert [h["status"] for h in order["status_history"]] == ["placed", "confirmed"]
    held = [r for r in fleet.inventory.reservations.values() if r.status == "held"]
    assert len(held) == 1
    async with orders_engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM orders.orders WHERE sos_id = :s"),
            {"s": uuid.UUID(sos["id"])},
        )
    assert count == 1
    events = await sos_events(orders_engine, sos["id"])
    types = [e["type"] for e in events]
    assert types.count("sos.fulfilled") == 1
    assert types.count("sos.closed") == 1
    closed = next(e for e in events if e["type"] == "sos.closed")["data"]
    winner = order["vendor_id"]
    assert closed["reason"] == "fulfilled"
    assert sorted(closed["vendor_ids"]) == sorted(
        str(v.org_id) for v, _ in vendors if str(v.org_id) != winner
    )
    placed = [e for e in events if e["type"] == "order.placed"]
    assert len(placed) == 1
    assert placed[0]["data"]["sos_id"] == sos["id"]
    assert [e["type"] for e in events if e["type"].startswith("order.")] == [
        "order.placed",
        "order.confirmed",
    ]


async def test_never_offered_is_404_and_short_stock_keeps_it_open(
    client: httpx.AsyncClient, fleet: Fleet
) -> None:
    hospital, product = fleet.hospital(), uuid.uuid4()
    vendors = five_vendors(fleet, product, stock=5)
    sos = await open_sos(client, hospital, sos_body(fleet, product, 4, ring_size=2))
    outsider, outsider_depot = vendors[4]
    response = await client.post(
        f"/api/v1/sos/{sos['id']}/accept",
        json={"depot_id": str(outsider_depot.depot_id), "eta_minutes": 10},
        headers=outsider.headers,
    )
    assert response.status_code == 404
    assert (
        await client.get(f"/api/v1/sos/{sos['id']}", headers=outsider.headers)
    ).status_code == 404

    vendor, depot = vendors[0]
    depot.on_hand[product] = 2  # sold elsewhere since the ring opened
    short = await client.post(
        f"/api/v1/sos/{sos['id']}/accept",
        json={"depot_id": str(depot.depot_id), "eta_minutes": 10},
        headers=vendor.headers,
    )
    assert short.status_code == 409
    assert short.json()["short_items"]
    after = (await client.get(f"/api/v1/sos/{sos['id']}", headers=hospital.headers)).json()
    assert after["status"] == "open"
    assert after["order_id"] is None
    assert not [r for r in fleet.inventory.reservations.values() if r.status == "held"]
    # The other vendor of the ring can still take it.
    other, other_depot = vendors[1]
    ok = await client.post(
        f"/api/v1/sos/{sos['id']}/accept",
        json={"depot_id": str(other_depot.depot_id), "eta_minutes": 12},
        headers=other.headers,
    )
    assert ok.status_code == 201, ok.text
    late = await client.post(
        f"/api/v1/sos/{sos['id']}/accept",
        json={"depot_id": str(depot.depot_id), "eta_minutes": 10},
        headers=vendor.headers,
    )
    assert late.status_code == 409
    assert late.json()["type"].endswith("/sos-closed")


async def test_every_decline_of_a_ring_opens_the_next_at_once(
    client: httpx.AsyncClient, fleet: Fleet, orders_engine: AsyncEngine
) -> None:
    hospital, product = fleet.hospital(), uuid.uuid4()
    vendors = five_vendors(fleet, product)
    sos = await open_sos(client, hospital, sos_body(fleet, product, 1, ring_size=2))
    first = await client.post(
        f"/api/v1/sos/{sos['id']}/decline",
        json={"reason": "no driver"},
        headers=vendors[0][0].headers,
    )
    assert first.status_code == 200, first.text
    # A vendor sees its own offer only.
    assert [o["vendor_id"] for r in first.json()["rings"] for o in r["offers"]] == [
        str(vendors[0][0].org_id)
    ]
    second = await client.post(
        f"/api/v1/sos/{sos['id']}/decline", json={"reason": "closed"}, headers=vendors[1][0].headers
    )
    assert second.status_code == 200
    now = (await client.get(f"/api/v1/sos/{sos['id']}", headers=hospital.headers)).json()
    assert now["current_ring"] == 2
    assert [o["vendor_id"] for o in now["rings"][1]["offers"]] == [
        str(v.org_id) for v, _ in vendors[2:4]
    ]
    assert now["rings"][0]["closed_reason"] == "declined"
    events = await sos_events(orders_engine, sos["id"])
    escalated = [e["data"] for e in events if e["type"] == "sos.escalated"]
    assert escalated == [
        {
            "sos_id": sos["id"],
            "hospital_org_id": str(hospital.org_id),
            "from_ring": 1,
            "to_ring": 2,
            "reason": "declined",
        }
    ]
    assert [e["data"]["ring_number"] for e in events if e["type"] == "sos.request"] == [1, 2]
    # The new ring's vendors see it; ring 1's decliners still see theirs.
    listed = (await client.get("/api/v1/sos", headers=vendors[2][0].headers)).json()
    assert [s["id"] for s in listed["items"]] == [sos["id"]]


async def test_a_timed_out_ring_escalates_once_with_two_concurrent_sweeps(
    order_app: OrderApp, fleet: Fleet, orders_engine: AsyncEngine
) -> None:
    client = order_app.client
    hospital, product = fleet.hospital(), uuid.uuid4()
    vendors = five_vendors(fleet, product)
    sos = await open_sos(client, hospital, sos_body(fleet, product, 1, ring_size=2))
    sweeper = order_app.app.state.sos_sweeper
    # Other tests' requests share the database: only this one's events are looked at.
    await sweeper.run_once(datetime.now(UTC))
    assert not [
        e for e in await sos_events(orders_engine, sos["id"]) if e["type"] == "sos.escalated"
    ]
    later = datetime.now(UTC) + timedelta(seconds=181)

    await asyncio.gather(sweeper.run_once(later), sweeper.run_once(later))
    await sweeper.run_once(later)

    events = await sos_events(orders_engine, sos["id"])
    escalations = [e["data"] for e in events if e["type"] == "sos.escalated"]
    assert [(e["from_ring"], e["to_ring"], e["reason"]) for e in escalations] == [
        (1, 2, "timed_out")
    ]
    now = (await client.get(f"/api/v1/sos/{sos['id']}", headers=hospital.headers)).json()
    assert now["rings"][0]["closed_reason"] == "timed_out"
    assert [o["vendor_id"] for o in now["rings"][1]["offers"]] == [
        str(v.org_id) for v, _ in vendors[2:4]
    ]
    # A ring-1 vendor whose ring timed out can no longer take it.
    late = await client.post(
        f"/api/v1/sos/{sos['id']}/accept",
        json={"depot_id": str(vendors[0][1].depot_id), "eta_minutes": 5},
        headers=vendors[0][0].headers,
    )
    assert late.status_code == 409
    assert late.json()["type"].endswith("/sos-ring-closed")


async def test_nobody_left_in_range_makes_it_unfilled_and_gives_the_cap_back(
    order_app: OrderApp, fleet: Fleet, orders_engine: AsyncEngine
) -> None:
    client = order_app.client
    hospital, product = fleet.hospital(), uuid.uuid4()
    vendors = five_vendors(fleet, product, count=2)
    sos = await open_sos(client, hospital, sos_body(fleet, product, 2, ring_size=2))
    assert await open_units(orders_engine, hospital, product) == 2
    later = datetime.now(UTC) + timedelta(seconds=200)
    assert await order_app.app.state.sos_sweeper.run_once(later) >= 1
    now = (await client.get(f"/api/v1/sos/{sos['id']}", headers=hospital.headers)).json()
    assert now["status"] == "unfilled"
    assert await open_units(orders_engine, hospital, product) == 0
    events = await sos_events(orders_engine, sos["id"])
    unfilled = next(e for e in events if e["type"] == "sos.unfilled")["data"]
    assert unfilled["rings_tried"] == 1
    assert unfilled["quantity"] == 2
    closed = next(e for e in events if e["type"] == "sos.closed")["data"]
    assert closed["reason"] == "unfilled"
    assert sorted(closed["vendor_ids"]) == sorted(str(v.org_id) for v, _ in vendors)


async def test_the_hospital_cancels_an_open_sos_only(
    client: httpx.AsyncClient, fleet: Fleet, orders_engine: AsyncEngine
) -> None:
    hospital, product = fleet.hospital(), uuid.uuid4()
    five_vendors(fleet, product)
    sos = await open_sos(client, hospital, sos_body(fleet, product, 3))
    other_hospital = fleet.hospital()
    assert (
        await client.post(f"/api/v1/sos/{sos['id']}/cancel", headers=other_hospital.headers)
    ).status_code == 404
    cancelled = await client.post(f"/api/v1/sos/{sos['id']}/cancel", headers=hospital.headers)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = await client.post(f"/api/v1/sos/{sos['id']}/cancel", headers=hospital.headers)
    assert again.status_code == 409
    assert again.json()["type"].endswith("/sos-closed")
    assert await open_units(orders_engine, hospital, product) == 0
    events = await sos_events(orders_engine, sos["id"])
    types = [e["type"] for e in events]
    assert types[-2:] == ["sos.closed", "sos.cancelled"]
    assert events[-1]["data"]["cancelled_by"] == str(hospital.user_id)


async def test_visibility_hospital_own_vendor_offered_admin_all(
    client: httpx.AsyncClient, fleet: Fleet
) -> None:
    hospital, product = fleet.hospital(), uuid.uuid4()
    vendors = five_vendors(fleet, product)
    sos = await open_sos(client, hospital, sos_body(fleet, product, 1, ring_size=2))
    path = f"/api/v1/sos/{sos['id']}"
    assert (await client.get(path, headers=fleet.hospital().headers)).status_code == 404
    assert (await client.get(path, headers=vendors[3][0].headers)).status_code == 404
    mine = (await client.get(path, headers=vendors[1][0].headers)).json()
    assert [o["vendor_id"] for r in mine["rings"] for o in r["offers"]] == [
        str(vendors[1][0].org_id)
    ]
    admin = (await client.get(path, headers=fleet.admin().headers)).json()
    assert len(admin["rings"][0]["offers"]) == 2
    listed = await client.get("/api/v1/sos?status=open", headers=fleet.admin().headers)
    assert sos["id"] in [s["id"] for s in listed.json()["items"]]
    none = await client.get("/api/v1/sos?status=fulfilled", headers=hospital.headers)
    assert none.json()["total"] == 0


async def test_a_declined_card_never_fails_an_sos_order(
    order_app: OrderApp, fleet: Fleet, orders_engine: AsyncEngine
) -> None:
    client = order_app.client
    hospital, product = fleet.hospital(), uuid.uuid4()
    vendor, depot = five_vendors(fleet, product)[0]
    sos = await open_sos(client, hospital, sos_body(fleet, product, 1, ring_size=1))
    won = await client.post(
        f"/api/v1/sos/{sos['id']}/accept",
        json={"depot_id": str(depot.depot_id), "eta_minutes": 15},
        headers=vendor.headers,
    )
    assert won.status_code == 201, won.text
    order_id = won.json()["order"]["id"]
    envelope = EventEnvelope(
        type="payment.failed",
        producer="payment-service",
        data={"order_id": order_id, "payment_id": str(uuid.uuid4()), "reason": "declined"},
    )
    async with order_app.app.state.database.sessionmaker() as session, session.begin():
        await on_payment_failed(session, envelope)
    order = (await client.get(f"/api/v1/orders/{order_id}", headers=hospital.headers)).json()
    assert order["status"] == "confirmed"


async def test_a_card_paid_sos_hands_its_token_over_when_it_opens(
    client: httpx.AsyncClient, fleet: Fleet, orders_engine: AsyncEngine
) -> None:
    """The token goes to payment-service under the SOS's id (its order's id is chosen when a
    vendor accepts); the SOS order's order.placed names that sos_id."""
    hospital, product = fleet.hospital(), uuid.uuid4()
    vendor, depot = five_vendors(fleet, product)[0]
    body = sos_body(fleet, product, 1, ring_size=1, payment_method="card", card_token="tok_visa")

    sos = await open_sos(client, hospital, body)

    assert len(fleet.payment.calls("PUT", rf"/internal/sos/{sos['id']}/card-token")) == 1
    assert fleet.payment.card_tokens[uuid.UUID(sos["id"])] == "tok_visa"
    assert "tok_visa" not in str(sos)
    won = await client.post(
        f"/api/v1/sos/{sos['id']}/accept",
        json={"depot_id": str(depot.depot_id), "eta_minutes": 12},
        headers=vendor.headers,
    )
    assert won.status_code == 201, won.text
    order = won.json()["order"]
    assert order["payment_method"] == "card"
    # Handed over once, for the SOS: accepting hands nothing over for the order.
    assert fleet.payment.calls("PUT", r"/internal/orders/[^/]+/card-token") == []
    placed = [e for e in await sos_events(orders_engine, sos["id"]) if e["type"] == "order.placed"]
    assert [e["data"]["order_id"] for e in placed] == [order["id"]]
    assert placed[0]["data"]["payment_method"] == "card"
    assert "card_token" not in placed[0]["data"]


async def test_a_card_sos_needs_its_token_and_payment_service(
    client: httpx.AsyncClient, fleet: Fleet, orders_engine: AsyncEngine
) -> None:
    hospital, product = fleet.hospital(), uuid.uuid4()
    five_vendors(fleet, product, count=1)
    no_token = await client.post(
        "/api/v1/sos",
        json=sos_body(fleet, product, 1, payment_method="card"),
        headers=hospital.headers,
    )
    assert no_token.status_code == 422, no_token.text

    fleet.payment.down = True
    try:
        refused = await client.post(
            "/api/v1/sos",
            json=sos_body(fleet, product, 2, payment_method="card", card_token="tok_visa"),
            headers=hospital.headers,
        )
    finally:
        fleet.payment.down = False

    assert refused.status_code == 503, refused.text
    assert "payment-service" in refused.json()["detail"]
    listed = await client.get("/api/v1/sos", headers=hospital.headers)
    assert listed.json()["total"] == 0  # nothing opened
    assert await open_units(orders_engine, hospital, product) == 0  # nothing counted


async def test_a_decline_during_an_inventory_outage_counts_and_the_sweeper_escalates(
    order_app_for: OrderAppFactory, fleet: Fleet, orders_engine: AsyncEngine
) -> None:
    """The last decline of a ring cannot look up the next ring while inventory-service is
    down: the decline is kept (200), and the sweeper opens ring 2 once it answers."""
    hospital, product = fleet.hospital(), uuid.uuid4()
    vendors = five_vendors(fleet, product, count=2)
    async with order_app_for(breaker_reset_timeout_seconds=0.3) as order_app:
        client, sweeper = order_app.client, order_app.app.state.sos_sweeper
        sos = await open_sos(client, hospital, sos_body(fleet, product, 1, ring_size=1))
        fleet.inventory.down = True
        try:
            declined = await client.post(
                f"/api/v1/sos/{sos['id']}/decline",
                json={"reason": "no driver"},
                headers=vendors[0][0].headers,
            )
            assert declined.status_code == 200, declined.text
            assert declined.json()["rings"][0]["offers"][0]["answer"] == "declined"
            # Still down: a sweep fails and changes nothing (its task logs it, tries again).
            with pytest.raises(ServiceUnavailable):
                await sweeper.run_once(datetime.now(UTC))
        finally:
            fleet.inventory.down = False
        events = await sos_events(orders_engine, sos["id"])
        assert not [e for e in events if e["type"] == "sos.escalated"]
        await asyncio.sleep(0.4)  # past the breaker's reset timeout: a probe may go

        await sweeper.run_once(datetime.now(UTC))

        events = await sos_events(orders_engine, sos["id"])
        escalations = [e["data"] for e in events if e["type"] == "sos.escalated"]
        assert [(e["from_ring"], e["to_ring"], e["reason"]) for e in escalations] == [
            (1, 2, "declined")
        ]
        now = (await client.get(f"/api/v1/sos/{sos['id']}", headers=hospital.headers)).json()
        assert now["rings"][0]["closed_reason"] == "declined"
        assert [o["vendor_id"] for o in now["rings"][1]["offers"]] == [str(vendors[1][0].org_id)]
