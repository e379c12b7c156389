"""Nothing is lost when a part fails: the broker or payment-service goes away mid-flow."""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass
from typing import Any

import httpx

from flow_shared.testing.polling import eventually
from tests.e2e.conftest import Account, Accounts, StockedDepot

DEPOT = {"lat": 51.4545, "lon": -2.5879}  # Bristol
DELIVERY = {"lat": 51.4584, "lon": -2.6003}


@dataclass
class World:
    stocked: StockedDepot
    hospital: Account

    def order_body(self, **fields: Any) -> dict[str, Any]:
        """A routine invoice order of one unit, delivered near the depot, changed by `fields`."""
        return self.stocked.order_body("routine", delivery=DELIVERY, **fields)


async def _world(gateway: httpx.AsyncClient, accounts: Accounts, stock: int) -> World:
    stocked = await accounts.stocked_depot(
        name="Bristol depot", **DEPOT, category="oxygen_cylinder", on_hand=stock
    )
    hospital = await accounts.register("hospital")
    # A new hospital is unverified, so its allocation cap (ALLOCATION_CAP_UNVERIFIED) is
    # below the fifty orders here: the admin raises it for this product, synchronously
    # (a verification would reach order-service as an event, and the broker goes down).
    raised = await gateway.put(
        f"/api/v1/admin/organizations/{hospital.org_id}/allocation",
        headers=await accounts.admin(),
        json={"caps": [{"product_id": stocked.product_id, "units": 1000}]},
    )
    assert raised.status_code == 200, raised.text
    return World(stocked, hospital)


async def _payments(
    gateway: httpx.AsyncClient, headers: dict[str, str], order_id: str
) -> list[Any]:
    answer = await gateway.get("/api/v1/payments", params={"order_id": order_id}, headers=headers)
    assert answer.status_code == 200, answer.text
    items: list[Any] = answer.json()["items"]
    return items


async def test_with_payment_service_down_invoices_place_and_card_orders_are_503_and_nothing(
    gateway: httpx.AsyncClient, accounts: Any, fleet: Any
) -> None:
    """A card order hands its token to payment-service before it is created (never through
    an event), so without payment-service it is refused whole; an invoice order is placed
    and its payment opened once payment-service is back."""
    world = await _world(gateway, accounts, stock=5)
    hospital = world.hospital.headers
    fleet.flowctl("stop", "payment-service")
    try:
        by_card = await gateway.post(
            "/api/v1/orders",
            headers=hospital,
            json=world.order_body(payment_method="card", card_token="tok_visa"),
        )
        assert by_card.status_code == 503, by_card.text
        assert "payment-service" in by_card.json()["detail"]
        listed = await gateway.get("/api/v1/orders", headers=hospital)
        assert listed.json()["items"] == []  # no order left behind
        by_invoice = await gateway.post("/api/v1/orders", headers=hospital, json=world.order_body())
        assert by_invoice.status_code == 201, by_invoice.text
    finally:
        fleet.flowctl("start", "payment-service")
    invoice_id = by_invoice.json()["id"]

    async def opened() -> list[Any] | None:
        payments = await _payments(gateway, hospital, invoice_id)
        return payments if payments and payments[0]["status"] == "pending" else None

    payments = await eventually(
        opened, "the invoice payment opened once payment-service is back", seconds=90
    )
    assert len(payments) == 1

    # Back up, a card order is placed and authorized; its stock was given back before.
    async def card_order() -> Any:
        placed = await gateway.post(
            "/api/v1/orders",
            headers=hospital,
            json=world.order_body(payment_method="card", card_token="tok_visa"),
        )
        return placed if placed.status_code == 201 else None

    card_id = (await eventually(card_order, "a card order placed", seconds=30)).json()["id"]

    async def authorized() -> list[Any] | None:
        payments = await _payments(gateway, hospital, card_id)
        return payments if payments and payments[0]["status"] == "authorized" else None

    assert len(await eventually(authorized, "the card payment authorized", seconds=90)) == 1


async def _placed_count(gateway: httpx.AsyncClient, admin: dict[str, str]) -> int:
    stats = await gateway.get("/api/v1/admin/stats", headers=admin)
    return int(stats.json()["orders_by_status"].get("placed", 0))


async def _settled_placed_count(gateway: httpx.AsyncClient, admin: dict[str, str]) -> int:
    """Admin's count once earlier events have all arrived (two equal reads a second apart)."""
    previous = await _placed_count(gateway, admin)
    while True:
        await asyncio.sleep(1.5)
        current = await _placed_count(gateway, admin)
        if current == previous:
            return current
        previous = current


def _rabbitmq(action: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", action], check=True, capture_output=True, timeout=120)


async def test_fifty_orders_while_the_broker_is_down_are_paid_heard_and_counted_once(
    gateway: httpx.AsyncClient, accounts: Any
) -> None:
    # 70 on hand: routine orders may take all but the emergency reserve (20 %), 56 units.
    world = await _world(gateway, accounts, stock=70)
    admin = await accounts.admin()
    before = await _settled_placed_count(gateway, admin)

    _rabbitmq("stop_app")
    try:
        answers = []
        for _ in range(5):
            answers += await asyncio.gather(
                *(
                    gateway.post(
                        "/api/v1/orders",
                        headers=world.hospital.headers,
                        json=world.order_body(),
                        timeout=60,
                    )
                    for _ in range(10)
                )
            )
    finally:
        _rabbitmq("start_app")
    assert [a.status_code for a in answers] == [201] * 50, [
        a.text for a in answers if a.status_code != 201
    ]
    order_ids = {a.json()["id"] for a in answers}

    async def all_paid() -> bool | None:
        for order_id in order_ids:
            payments = await _payments(gateway, world.hospital.headers, order_id)
            if len(payments) != 1:
                return None
        return True

    await eventually(all_paid, "one payment per order", seconds=90)

    async def all_heard() -> list[Any] | None:
        answer = await gateway.get(
            "/api/v1/notifications", params={"page_size": 100}, headers=world.stocked.vendor.headers
        )
        placed = [n for n in answer.json()["items"] if n["type"] == "order.placed"]
        return placed if {n["data"]["order_id"] for n in placed} == order_ids else None

    heard = await eventually(all_heard, "the vendor told of every order", seconds=90)
    assert len(heard) == 50  # exactly one each

    async def counted() -> int | None:
        count = await _placed_count(gateway, admin)
        return count if count == before + 50 else None

    await eventually(counted, "admin counts exactly 50 more placed orders", seconds=90)
    await asyncio.sleep(2)
    assert await _placed_count(gateway, admin) == before + 50
