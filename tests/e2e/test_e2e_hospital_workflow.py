"""The whole hospital workflow through the gateway with every service running.

Paid, heard and counted: a card order is authorized, the vendor hears of it
(list and live stream), it is delivered and captured, the hospital reviews it,
and admin's figures agree. A declined card fails the order and gives the
stock back, and the hospital hears why.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx

from flow_shared.testing.polling import eventually
from tests.e2e.conftest import Accounts, StockedDepot

DEPOT = {"lat": 53.4808, "lon": -2.2426}  # Manchester
SITE = {"lat": 53.4621, "lon": -2.2290}  # about 2.3 km south


async def _manchester_depot(accounts: Accounts, on_hand: int) -> StockedDepot:
    return await accounts.stocked_depot(
        name="Manchester depot", **DEPOT, category="oxygen_cylinder", on_hand=on_hand
    )


async def _available(gateway: httpx.AsyncClient, stocked: StockedDepot) -> int:
    rows = await gateway.get(
        f"/api/v1/inventory/depots/{stocked.depot_id}/stock", headers=stocked.vendor.headers
    )
    row = next(r for r in rows.json()["items"] if r["product_id"] == stocked.product_id)
    return int(row["available"])


async def _payment(
    gateway: httpx.AsyncClient, headers: dict[str, str], order_id: str, status: str
) -> dict[str, Any] | None:
    answer = await gateway.get("/api/v1/payments", params={"order_id": order_id}, headers=headers)
    if answer.status_code != 200:
        return None
    body = answer.json()
    items = body["items"] if isinstance(body, dict) and "items" in body else body
    matching = [p for p in items if p["order_id"] == order_id and p["status"] == status]
    return matching[0] if matching else None


async def _notification(
    gateway: httpx.AsyncClient, headers: dict[str, str], event_type: str, order_id: str
) -> dict[str, Any] | None:
    answer = await gateway.get("/api/v1/notifications", params={"page_size": 100}, headers=headers)
    assert answer.status_code == 200, answer.text
    for note in answer.json()["items"]:
        if note["type"] == event_type and note["data"].get("order_id") == order_id:
            return dict(note)
    return None


async def test_a_card_order_is_paid_heard_delivered_reviewed_and_counted(
    gateway: httpx.AsyncClient, accounts: Any, fleet: Any
) -> None:
    admin = await accounts.admin()
    stats_before = (await gateway.get("/api/v1/admin/stats", headers=admin)).json()
    stocked = await _manchester_depot(accounts, on_hand=10)
    vendor = stocked.vendor
    hospital = await accounts.register("hospital")
    site = await gateway.post(
        "/api/v1/locations/sites", headers=hospital.headers, json={"name": "Theatres", **SITE}
    )
    assert site.status_code == 201, site.text

    nearby = await gateway.get(
        "/api/v1/catalog/nearby",
        headers=hospital.headers,
        params={**SITE, "radius_km": 10, "product_id": stocked.product_id},
    )
    assert stocked.depot_id in {row["depot_id"] for row in nearby.json()["items"]}
    compare = await gateway.get(
        "/api/v1/pricing/compare",
        headers=hospital.headers,
        params={
            "product_id": stocked.product_id,
            "quantity": 2,
            **SITE,
            "radius_km": 10,
            "priority": "urgent",
        },
    )
    assert compare.status_code == 200, compare.text
    assert stocked.depot_id in {item["depot_id"] for item in compare.json()["items"]}

    # The vendor keeps a live stream open through the gateway while the order is placed.
    heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def listen() -> None:
        async with gateway.stream(
            "GET", "/api/v1/notifications/stream", headers=vendor.headers, timeout=60
        ) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    await heard.put(json.loads(line[5:]))

    listener = asyncio.create_task(listen())
    await asyncio.sleep(1.0)
    placed = await gateway.post(
        "/api/v1/orders",
        headers={**hospital.headers, "Idempotency-Key": uuid.uuid4().hex},
        json=stocked.order_body(
            "urgent",
            quantity=2,
            site_id=site.json()["id"],
            payment_method="card",
            card_token="tok_visa",
        ),
    )
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]

    async def streamed() -> dict[str, Any]:
        while True:
            message = await heard.get()
            if (
                message.get("type") == "order.placed"
                and message["data"].get("order_id") == order_id
            ):
                return message

    try:
        await asyncio.wait_for(streamed(), 30)
    finally:
        listener.cancel()
    await eventually(
        lambda: _notification(gateway, vendor.headers, "order.placed", order_id),
        "the vendor's order.placed notification",
    )
    await eventually(
        lambda: _payment(gateway, hospital.headers, order_id, "authorized"), "the card authorized"
    )

    for action in ("confirm", "dispatch", "deliver"):
        moved = await gateway.post(
            f"/api/v1/orders/{order_id}/{action}", headers=vendor.headers, json={}
        )
        assert moved.status_code == 200, moved.text
    captured = await eventually(
        lambda: _payment(gateway, hospital.headers, order_id, "captured"), "the payment captured"
    )
    assert captured["amount"] == placed.json()["total"]
    await eventually(
        lambda: _notification(gateway, hospital.headers, "order.delivered", order_id),
        "the hospital's order.delivered notification",
    )

    async def review() -> httpx.Response | None:
        answer = await gateway.post(
            "/api/v1/reviews",
            headers=hospital.headers,
            json={"order_id": order_id, "rating": 5, "comment": "On time."},
        )
        return answer if answer.status_code == 201 else None

    await eventually(review, "the review accepted once the delivery is known")
    summary = await gateway.get(
        f"/api/v1/reviews/vendors/{vendor.org_id}/summary", headers=hospital.headers
    )
    assert summary.json()["count"] == 1
    assert summary.json()["distribution"]["5"] == 1

    async def counted() -> dict[str, Any] | None:
        stats = (await gateway.get("/api/v1/admin/stats", headers=admin)).json()
        before = stats_before["orders_by_status"].get("delivered", 0)
        return stats if stats["orders_by_status"].get("delivered", 0) == before + 1 else None

    stats = await eventually(counted, "admin counts the delivered order")
    assert stats["active_vendors"] >= 1
    audit = await gateway.get(
        "/api/v1/admin/audit", params={"type": "order.delivered"}, headers=admin
    )
    assert order_id in {event["data"]["order_id"] for event in audit.json()["items"]}
    health = await gateway.get("/api/v1/admin/health", headers=admin)
    assert health.status_code == 200
    assert health.json()["status"] == "ok", health.json()
    assert "admin-service" in health.json()["services"]
    assert len(health.json()["services"]) == 10


async def test_a_declined_card_fails_the_order_and_gives_the_stock_back(
    gateway: httpx.AsyncClient, accounts: Any
) -> None:
    stocked = await _manchester_depot(accounts, on_hand=5)
    hospital = await accounts.register("hospital")
    placed = await gateway.post(
        "/api/v1/orders",
        headers=hospital.headers,
        json=stocked.order_body(
            "emergency",
            quantity=3,
            delivery=SITE,
            payment_method="card",
            card_token="tok_declined",
        ),
    )
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]

    async def failed() -> dict[str, Any] | None:
        order = (await gateway.get(f"/api/v1/orders/{order_id}", headers=hospital.headers)).json()
        return order if order["status"] == "failed" else None

    await eventually(failed, "the order failed")
    await eventually(
        lambda: _payment(gateway, hospital.headers, order_id, "failed"), "payment failed"
    )
    await eventually(
        lambda: _notification(gateway, hospital.headers, "payment.failed", order_id),
        "the hospital told the payment failed",
    )

    async def stock_back() -> int | None:
        available = await _available(gateway, stocked)
        return available if available == 5 else None

    await eventually(stock_back, "the stock released", seconds=40)
