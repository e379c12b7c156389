"""Confirming an order extends its stock hold at inventory-service for the wait until
delivery; the placement hold itself only outlives the confirm window by a few minutes.
A lost hold refuses the confirmation, an unreachable inventory changes nothing."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from order_service.config import Settings

if TYPE_CHECKING:
    from conftest import FakeDepot, Fleet, OrderAppFactory, OrdersDb, Org

EXTEND = r"/internal/reservations/[^/]+/extend"
URGENT_WINDOW_SECONDS = 60 * 60


class Shop:
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.hospital: Org = fleet.hospital()
        self.vendor: Org = fleet.vendor()
        self.product = uuid.uuid4()
        self.depot: FakeDepot = fleet.depot(self.vendor, {self.product: 10})

    async def order(self, client: httpx.AsyncClient, quantity: int) -> dict[str, Any]:
        body = self.fleet.order_body(
            self.vendor, self.depot, [(self.product, quantity)], priority="urgent"
        )
        response = await client.post("/api/v1/orders", json=body, headers=self.hospital.headers)
        assert response.status_code == 201, response.text
        order: dict[str, Any] = response.json()
        return order

    async def move(self, client: httpx.AsyncClient, order: dict[str, Any], action: str) -> Any:
        return await client.post(
            f"/api/v1/orders/{order['id']}/{action}", headers=self.vendor.headers
        )

    async def read(self, client: httpx.AsyncClient, order: dict[str, Any]) -> dict[str, Any]:
        response = await client.get(f"/api/v1/orders/{order['id']}", headers=self.hospital.headers)
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def shop(fleet: Fleet) -> Shop:
    return Shop(fleet)


def test_the_placement_margin_is_minutes_and_the_confirmed_hold_days_by_default() -> None:
    defaults = Settings.model_fields
    assert defaults["reservation_hold_margin_seconds"].default <= 15 * 60
    assert defaults["confirmed_hold_seconds"].default == 7 * 24 * 3600


async def test_confirm_extends_the_hold_by_the_configured_time(
    order_app_for: OrderAppFactory, fleet: Fleet, shop: Shop
) -> None:
    three_days = 3 * 24 * 3600
    async with order_app_for(confirmed_hold_seconds=three_days) as opened:
        order = await shop.order(opened.client, 2)
        # Placing holds for the confirm window and the (short) default margin only.
        margin = Settings.model_fields["reservation_hold_margin_seconds"].default
        reserve = fleet.inventory.calls("POST", "/internal/reservations")[-1]
        assert json.loads(reserve.content)["ttl_seconds"] == URGENT_WINDOW_SECONDS + margin
        assert not fleet.inventory.calls("POST", EXTEND)

        confirmed = await shop.move(opened.client, order, "confirm")

    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "confirmed"
    extends = fleet.inventory.calls("POST", EXTEND)
    assert [(r.url.path, json.loads(r.content)) for r in extends] == [
        (f"/internal/reservations/{order['reservation_id']}/extend", {"ttl_seconds": three_days})
    ]
    hold = fleet.inventory.reservation(order["reservation_id"])
    assert hold.status == "held"
    left = hold.expires_at - fleet.inventory.now()
    assert timedelta(seconds=three_days - 60) < left <= timedelta(seconds=three_days)


def test_the_confirmed_hold_cannot_exceed_what_inventory_allows(infra: Any) -> None:
    kwargs = infra.settings_kwargs("order-service")
    assert Settings(**kwargs, confirmed_hold_seconds=7 * 24 * 3600).confirmed_hold_seconds
    with pytest.raises(ValueError, match="confirmed_hold_seconds"):
        Settings(**kwargs, confirmed_hold_seconds=7 * 24 * 3600 + 1)


@pytest.mark.parametrize("swept", [False, True], ids=["expired-unswept", "expired-and-swept"])
async def test_confirm_with_a_lost_hold_is_409_and_the_order_stays_placed(
    client: httpx.AsyncClient, fleet: Fleet, shop: Shop, orders_db: OrdersDb, swept: bool
) -> None:
    order = await shop.order(client, 4)
    # Inventory's clock passes the placement hold's expiry (order-service's does not).
    fleet.inventory.advance(URGENT_WINDOW_SECONDS + 3600)
    if swept:
        assert fleet.inventory.expire_due() == [uuid.UUID(order["reservation_id"])]
    before = await shop.read(client, order)

    refused = await shop.move(client, order, "confirm")

    assert refused.status_code == 409
    problem = refused.json()
    assert problem["type"].endswith("/hold-lost")
    assert "expired or been released" in problem["detail"]
    assert len(fleet.inventory.calls("POST", EXTEND)) == 1
    after = await shop.read(client, order)
    assert after == before
    assert after["status"] == "placed"
    assert [e["type"] for e in await orders_db.events_of(order["id"])] == ["order.placed"]
    assert await orders_db.reservation_status(order["id"]) == "held"


async def test_inventory_down_on_confirm_is_503_and_the_order_is_unchanged(
    client: httpx.AsyncClient, fleet: Fleet, shop: Shop, orders_db: OrdersDb
) -> None:
    order = await shop.order(client, 3)
    before = await shop.read(client, order)
    hold_expiry = fleet.inventory.reservation(order["reservation_id"]).expires_at
    fleet.inventory.down = True

    unavailable = await shop.move(client, order, "confirm")

    assert unavailable.status_code == 503
    assert await shop.read(client, order) == before
    assert [e["type"] for e in await orders_db.events_of(order["id"])] == ["order.placed"]
    assert fleet.inventory.reservation(order["reservation_id"]).expires_at == hold_expiry

    # Once inventory is back, the vendor's retry goes through.
    fleet.inventory.down = False
    confirmed = await shop.move(client, order, "confirm")
    assert confirmed.status_code == 200
    assert fleet.inventory.reservation(order["reservation_id"]).expires_at > hold_expiry


async def test_a_confirmed_order_is_delivered_long_after_the_placement_hold_would_expire(
    client: httpx.AsyncClient, fleet: Fleet, shop: Shop, orders_db: OrdersDb
) -> None:
    confirmed = await shop.order(client, 3)
    unconfirmed = await shop.order(client, 2)
    assert (await shop.move(client, confirmed, "confirm")).status_code == 200
    assert (await shop.move(client, confirmed, "dispatch")).status_code == 200
    placement_ttl = json.loads(fleet.inventory.calls("POST", "/internal/reservations")[0].content)[
        "ttl_seconds"
    ]

    # Two days on at inventory: far past the placement hold, well within the extension.
    two_days = 2 * 24 * 3600
    assert placement_ttl * 10 < two_days
    fleet.inventory.advance(two_days)
    expired = fleet.inventory.expire_due()

    # The hold nobody confirmed is gone; the confirmed order's is still there.
    assert expired == [uuid.UUID(unconfirmed["reservation_id"])]
    assert shop.depot.available(shop.product) == 7
    delivered = await shop.move(client, confirmed, "deliver")
    assert delivered.status_code == 200, delivered.text
    assert delivered.json()["status"] == "delivered"
    assert fleet.inventory.reservation(confirmed["reservation_id"]).status == "committed"
    assert shop.depot.on_hand[shop.product] == 7
    assert await orders_db.reservation_status(confirmed["id"]) == "committed"


async def test_a_hold_that_outlived_even_its_extension_cannot_be_delivered(
    client: httpx.AsyncClient, fleet: Fleet, shop: Shop
) -> None:
    order = await shop.order(client, 1)
    assert (await shop.move(client, order, "confirm")).status_code == 200
    assert (await shop.move(client, order, "dispatch")).status_code == 200
    extended = json.loads(fleet.inventory.calls("POST", EXTEND)[0].content)["ttl_seconds"]
    fleet.inventory.advance(extended + 60)

    late = await shop.move(client, order, "deliver")

    assert late.status_code == 409
    assert late.json()["type"].endswith("/reservation-not-held")
    assert (await shop.read(client, order))["status"] == "dispatched"
