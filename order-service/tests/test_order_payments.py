"""Payments and orders: a card order's token goes to payment-service over its internal API
(never into the outbox or an event), before the order is committed; payment-service down is
a 503 that leaves nothing behind; payment.failed fails the order."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from flow_shared.events.envelope import EventEnvelope
from flow_shared.testing.broker import publish_envelope
from flow_shared.testing.infra import TestInfra
from order_service.service.payments import on_payment_failed

if TYPE_CHECKING:
    from conftest import Fleet, OrderApp, OrderAppFactory, OrdersDb, PlaceOrder


def _payment_failed(order_id: str, reason: str = "card declined") -> EventEnvelope:
    return EventEnvelope(
        type="payment.failed",
        producer="payment-service",
        data={"order_id": order_id, "payment_id": str(uuid.uuid4()), "reason": reason},
    )


async def _handle(order_app: OrderApp, envelope: EventEnvelope) -> None:
    database = order_app.app.state.database
    async with database.sessionmaker() as session, session.begin():
        await on_payment_failed(session, envelope)


async def test_the_card_token_goes_to_payment_service_and_never_into_the_outbox(
    fleet: Fleet, place_order: PlaceOrder, orders_db: OrdersDb, orders_engine: AsyncEngine
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(5)
    token = f"tok_{uuid.uuid4().hex}"
    by_card = await place_order(
        hospital,
        fleet.order_body(vendor, depot, [(product, 1)], payment_method="card", card_token=token),
    )
    by_invoice = await place_order(hospital, fleet.order_body(vendor, depot, [(product, 1)]))

    # Handed over once, for this order, behind order-service's key (the stub checks it).
    assert fleet.payment.card_tokens == {uuid.UUID(by_card["id"]): token}
    [handed] = fleet.payment.calls("PUT", r"/internal/orders/[^/]+/card-token")
    assert handed.url.path == f"/internal/orders/{by_card['id']}/card-token"
    card_event = (await orders_db.events_of(by_card["id"]))[0]
    assert card_event["type"] == "order.placed"
    assert card_event["data"]["payment_method"] == "card"
    assert "card_token" not in card_event["data"]
    invoice_event = (await orders_db.events_of(by_invoice["id"]))[0]
    assert "card_token" not in invoice_event["data"]
    async with orders_engine.connect() as conn:
        in_outbox = await conn.scalar(
            text("SELECT count(*) FROM orders.outbox WHERE payload::text LIKE :t"),
            {"t": f"%{token}%"},
        )
    assert in_outbox == 0
    assert "card_token" not in by_card  # never in an answer either


async def test_payment_service_down_is_503_and_leaves_no_order_and_no_hold(
    client: httpx.AsyncClient, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(5)
    fleet.payment.down = True

    response = await client.post(
        "/api/v1/orders",
        json=fleet.order_body(
            vendor, depot, [(product, 2)], payment_method="card", card_token="tok_visa"
        ),
        headers=hospital.headers,
    )

    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "payment-service" in response.json()["detail"]
    assert await orders_db.order_ids_of(hospital.org_id) == []
    [reservation] = fleet.inventory.reservations.values()
    assert reservation.status == "released"
    assert depot.available(product) == 5
    # An invoice order does not need payment-service to be placed.
    invoice = await client.post(
        "/api/v1/orders",
        json=fleet.order_body(vendor, depot, [(product, 2)]),
        headers=hospital.headers,
    )
    assert invoice.status_code == 201, invoice.text


async def test_a_failed_payment_fails_the_order_once_and_gives_the_stock_back(
    order_app: OrderApp, fleet: Fleet, place_order: PlaceOrder, orders_db: OrdersDb
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(5)
    order = await place_order(
        hospital,
        fleet.order_body(
            vendor, depot, [(product, 2)], payment_method="card", card_token="tok_declined"
        ),
    )
    assert depot.available(product) == 3

    envelope = _payment_failed(order["id"])
    await _handle(order_app, envelope)
    await _handle(order_app, envelope)  # a redelivery changes nothing more

    failed = await order_app.client.get(f"/api/v1/orders/{order['id']}", headers=hospital.headers)
    assert failed.json()["status"] == "failed"
    assert [h["status"] for h in failed.json()["status_history"]] == ["placed", "failed"]
    events = await orders_db.events_of(order["id"])
    assert [e["type"] for e in events] == ["order.placed", "order.failed"]
    assert "payment failed" in events[1]["data"]["reason"]

    # The sweeper gives the hold back on its next run.
    assert await orders_db.reservation_status(order["id"]) == "release_pending"
    await order_app.sweep()
    assert fleet.inventory.reservation(order["reservation_id"]).status == "released"
    assert depot.available(product) == 5
    assert await orders_db.reservation_status(order["id"]) == "released"


async def test_a_late_payment_failure_leaves_a_finished_order_alone(
    order_app: OrderApp, fleet: Fleet, place_order: PlaceOrder, orders_db: OrdersDb
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(5)
    order = await place_order(hospital, fleet.order_body(vendor, depot, [(product, 1)]))
    cancelled = await order_app.client.post(
        f"/api/v1/orders/{order['id']}/cancel", headers=hospital.headers
    )
    assert cancelled.status_code == 200

    await _handle(order_app, _payment_failed(order["id"]))
    await _handle(order_app, _payment_failed(str(uuid.uuid4())))  # unknown order: ignored

    after = await order_app.client.get(f"/api/v1/orders/{order['id']}", headers=hospital.headers)
    assert after.json()["status"] == "cancelled"
    assert [e["type"] for e in await orders_db.events_of(order["id"])] == [
        "order.placed",
        "order.cancelled",
    ]


async def test_payment_failed_arrives_from_the_broker(
    order_app_for: OrderAppFactory, fleet: Fleet, orders_db: OrdersDb, infra: TestInfra
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(5)
    async with order_app_for() as opened:
        placed = await opened.client.post(
            "/api/v1/orders",
            json=fleet.order_body(
                vendor, depot, [(product, 1)], payment_method="card", card_token="tok_declined"
            ),
            headers=hospital.headers,
        )
        assert placed.status_code == 201
        order_id = placed.json()["id"]
        consumer = opened.app.state.consumer
        for _ in range(100):
            if consumer.is_connected:
                break
            await asyncio.sleep(0.1)

        await publish_envelope(infra.amqp_url, "flow.events", _payment_failed(order_id))
        status: Any = None
        for _ in range(100):
            answer = await opened.client.get(f"/api/v1/orders/{order_id}", headers=hospital.headers)
            status = answer.json()["status"]
            if status == "failed":
                break
            await asyncio.sleep(0.1)
    assert status == "failed"
    assert [e["type"] for e in await orders_db.events_of(order_id)] == [
        "order.placed",
        "order.failed",
    ]
