"""The order state machine: the vendor confirms, dispatches and delivers (committing the
stock), the hospital cancels before dispatch (releasing it), illegal moves are 409, and
every move is exactly one event carrying the correlation id of the request that made it."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import FakeDepot, Fleet, OrdersDb, Org, PlaceOrder


class World:
    def __init__(self, fleet: Fleet, place_order: PlaceOrder) -> None:
        self.fleet = fleet
        self.place_order = place_order
        self.hospital = fleet.hospital()
        self.vendor = fleet.vendor()
        self.product = uuid.uuid4()
        self.depot: FakeDepot = fleet.depot(self.vendor, {self.product: 10})

    async def order(self, quantity: int = 3, **fields: Any) -> dict[str, Any]:
        body = self.fleet.order_body(self.vendor, self.depot, [(self.product, quantity)], **fields)
        return await self.place_order(self.hospital, body)


@pytest.fixture
def world(fleet: Fleet, place_order: PlaceOrder) -> World:
    return World(fleet, place_order)


async def move(
    client: httpx.AsyncClient,
    org: Org,
    order: dict[str, Any],
    action: str,
    body: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> httpx.Response:
    headers = org.with_request_id(request_id) if request_id else org.headers
    return await client.post(f"/api/v1/orders/{order['id']}/{action}", json=body, headers=headers)


async def test_confirm_dispatch_deliver_commits_the_stock_with_one_event_per_move(
    client: httpx.AsyncClient, world: World, orders_db: OrdersDb
) -> None:
    order = await world.order(3)
    vendor = world.vendor

    confirmed = await move(client, vendor, order, "confirm", {"eta_minutes": 40}, "req-confirm")
    dispatched = await move(client, vendor, order, "dispatch", None, "req-dispatch")
    delivered = await move(client, vendor, order, "deliver", None, "req-deliver")

    assert [r.status_code for r in (confirmed, dispatched, delivered)] == [200, 200, 200]
    assert confirmed.json()["eta_minutes"] == 40
    final = delivered.json()
    assert final["status"] == "delivered"
    assert [(h["status"], h["actor"]) for h in final["status_history"]] == [
        ("placed", str(world.hospital.user_id)),
        ("confirmed", str(vendor.user_id)),
        ("dispatched", str(vendor.user_id)),
        ("delivered", str(vendor.user_id)),
    ]
    reservation = world.fleet.inventory.reservation(order["reservation_id"])
    assert reservation.status == "committed"
    assert world.depot.on_hand[world.product] == 7
    assert world.depot.available(world.product) == 7
    assert await orders_db.reservation_status(order["id"]) == "committed"

    events = await orders_db.events_of(order["id"])
    assert [(e["type"], e["correlation_id"]) for e in events[1:]] == [
        ("order.confirmed", "req-confirm"),
        ("order.dispatched", "req-dispatch"),
        ("order.delivered", "req-deliver"),
    ]
    assert [e["data"]["status"] for e in events] == [
        "placed",
        "confirmed",
        "dispatched",
        "delivered",
    ]
    assert events[1]["data"]["eta_minutes"] == 40
    assert all(e["data"]["actor_id"] == str(vendor.user_id) for e in events[1:])
    assert all(e["data"]["total"] == order["total"] for e in events)
    assert len({e["id"] for e in events}) == 4


@pytest.mark.parametrize("confirm_first", [False, True])
async def test_cancel_before_dispatch_releases_the_stock(
    client: httpx.AsyncClient, world: World, orders_db: OrdersDb, confirm_first: bool
) -> None:
    order = await world.order(4)
    if confirm_first:
        assert (await move(client, world.vendor, order, "confirm")).status_code == 200
    assert world.depot.available(world.product) == 6

    cancelled = await move(
        client, world.hospital, order, "cancel", {"reason": "Patient transferred"}, "req-cancel"
    )

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["reason"] == "Patient transferred"
    assert world.fleet.inventory.reservation(order["reservation_id"]).status == "released"
    assert world.depot.available(world.product) == 10
    assert await orders_db.reservation_status(order["id"]) == "released"
    last = (await orders_db.events_of(order["id"]))[-1]
    assert (last["type"], last["correlation_id"]) == ("order.cancelled", "req-cancel")
    assert last["data"]["reason"] == "Patient transferred"
    assert last["data"]["actor_id"] == str(world.hospital.user_id)


async def test_reject_releases_the_stock_with_the_reason(
    client: httpx.AsyncClient, world: World, orders_db: OrdersDb
) -> None:
    order = await world.order(2)

    rejected = await move(
        client, world.vendor, order, "reject", {"reason": "Truck broke down"}, "req-reject"
    )
    no_reason = await move(client, world.vendor, await world.order(1), "reject", {})

    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected"
    assert world.fleet.inventory.reservation(order["reservation_id"]).status == "released"
    last = (await orders_db.events_of(order["id"]))[-1]
    assert (last["type"], last["correlation_id"]) == ("order.rejected", "req-reject")
    assert last["data"]["reason"] == "Truck broke down"
    assert no_reason.status_code == 422


@pytest.mark.parametrize(
    ("path", "action", "by"),
    [
        ([], "dispatch", "vendor"),
        ([], "deliver", "vendor"),
        (["confirm"], "confirm", "vendor"),
        (["confirm"], "reject", "vendor"),
        (["confirm", "dispatch"], "cancel", "hospital"),
        (["confirm", "dispatch", "deliver"], "deliver", "vendor"),
        (["confirm", "dispatch", "deliver"], "cancel", "hospital"),
        (["cancel"], "confirm", "vendor"),
        (["cancel"], "cancel", "hospital"),
        (["reject"], "dispatch", "vendor"),
    ],
)
async def test_illegal_moves_are_409_and_change_nothing(
    client: httpx.AsyncClient,
    world: World,
    orders_db: OrdersDb,
    path: list[str],
    action: str,
    by: str,
) -> None:
    order = await world.order(1)
    for step in path:
        actor = world.hospital if step == "cancel" else world.vendor
        body = {"reason": "no"} if step == "reject" else None
        assert (await move(client, actor, order, step, body)).status_code == 200
    before = await client.get(f"/api/v1/orders/{order['id']}", headers=world.hospital.headers)
    events_before = await orders_db.events_of(order["id"])
    commits_before = len(world.fleet.inventory.calls("POST", r".*/commit"))
    extends_before = len(world.fleet.inventory.calls("POST", r".*/extend"))

    body = {"reason": "no"} if action == "reject" else None
    actor = world.hospital if by == "hospital" else world.vendor
    response = await move(client, actor, order, action, body)

    assert response.status_code == 409
    assert response.json()["type"].endswith("/illegal-transition")
    after = await client.get(f"/api/v1/orders/{order['id']}", headers=world.hospital.headers)
    assert after.json() == before.json()
    assert await orders_db.events_of(order["id"]) == events_before
    # An illegal delivery never touches the stock.
    assert len(world.fleet.inventory.calls("POST", r".*/commit")) == commits_before
    # Nor does an illegal confirmation touch the hold.
    assert len(world.fleet.inventory.calls("POST", r".*/extend")) == extends_before


async def test_only_the_two_organisations_and_admins_see_an_order(
    client: httpx.AsyncClient, world: World, fleet: Fleet
) -> None:
    order = await world.order(1)
    url = f"/api/v1/orders/{order['id']}"

    seen = {
        name: (await client.get(url, headers=org.headers)).status_code
        for name, org in {
            "hospital": world.hospital,
            "vendor": world.vendor,
            "admin": fleet.admin(),
            "other hospital": fleet.hospital(),
            "other vendor": fleet.vendor(),
        }.items()
    }
    unknown = await client.get(f"/api/v1/orders/{uuid.uuid4()}", headers=world.hospital.headers)

    assert seen == {
        "hospital": 200,
        "vendor": 200,
        "admin": 200,
        "other hospital": 404,
        "other vendor": 404,
    }
    assert unknown.status_code == 404


async def test_moves_are_only_for_the_right_organisation(
    client: httpx.AsyncClient, world: World, fleet: Fleet
) -> None:
    order = await world.order(1)

    other_vendor_confirms = await move(client, fleet.vendor(), order, "confirm")
    other_vendor_rejects = await move(client, fleet.vendor(), order, "reject", {"reason": "x"})
    other_hospital_cancels = await move(client, fleet.hospital(), order, "cancel")
    hospital_confirms = await move(client, world.hospital, order, "confirm")
    hospital_dispatches = await move(client, world.hospital, order, "dispatch")
    vendor_cancels = await move(client, world.vendor, order, "cancel")
    admin_confirms = await move(client, fleet.admin(), order, "confirm")

    assert other_vendor_confirms.status_code == 404
    assert other_vendor_rejects.status_code == 404
    assert other_hospital_cancels.status_code == 404
    assert hospital_confirms.status_code == 403
    assert hospital_dispatches.status_code == 403
    assert vendor_cancels.status_code == 403
    assert admin_confirms.status_code == 403
    still = await client.get(f"/api/v1/orders/{order['id']}", headers=world.hospital.headers)
    assert still.json()["status"] == "placed"
    assert world.fleet.inventory.reservation(order["reservation_id"]).status == "held"


async def test_lists_show_each_organisation_its_own_orders(
    client: httpx.AsyncClient, world: World, fleet: Fleet, place_order: PlaceOrder
) -> None:
    first = await world.order(1)
    second = await world.order(1)
    third = await world.order(1)
    await move(client, world.vendor, second, "confirm")
    other_hospital = fleet.hospital()
    theirs = await place_order(
        other_hospital, fleet.order_body(world.vendor, world.depot, [(world.product, 1)])
    )
    other_vendor = fleet.vendor()
    other_depot = fleet.depot(other_vendor, {world.product: 3})
    elsewhere = await place_order(
        world.hospital, fleet.order_body(other_vendor, other_depot, [(world.product, 1)])
    )

    async def ids(org: Org, query: str = "") -> list[str]:
        response = await client.get(f"/api/v1/orders{query}", headers=org.headers)
        assert response.status_code == 200
        return [o["id"] for o in response.json()["items"]]

    newest_first = [elsewhere["id"], third["id"], second["id"], first["id"]]
    assert await ids(world.hospital) == newest_first
    assert await ids(world.vendor) == [theirs["id"], third["id"], second["id"], first["id"]]
    assert await ids(other_vendor) == [elsewhere["id"]]
    assert await ids(world.hospital, "?status=confirmed") == [second["id"]]
    assert await ids(world.hospital, "?page=2&page_size=3") == [first["id"]]
    page = (await client.get("/api/v1/orders?page_size=3", headers=world.hospital.headers)).json()
    assert (page["page"], page["page_size"], page["total"]) == (1, 3, 4)
    admin_ids = await ids(fleet.admin(), "?page_size=100")
    assert {theirs["id"], elsewhere["id"], first["id"]} <= set(admin_ids)
    bad = await client.get("/api/v1/orders?status=lost", headers=world.hospital.headers)
    assert bad.status_code == 422


async def test_a_cancel_stands_while_inventory_is_down_and_the_hold_waits_for_a_retry(
    client: httpx.AsyncClient, world: World, orders_db: OrdersDb, order_app: Any
) -> None:
    order = await world.order(5)
    world.fleet.inventory.down = True

    cancelled = await move(client, world.hospital, order, "cancel")

    # The cancellation stands; the stock is still held until inventory-service is back.
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert await orders_db.reservation_status(order["id"]) == "release_pending"
    assert world.depot.available(world.product) == 5

    world.fleet.inventory.down = False
    await order_app.sweep()  # not yet due: retried only after release_retry_after_seconds
    assert await orders_db.reservation_status(order["id"]) == "release_pending"


async def test_a_due_release_is_retried_and_recorded(
    order_app_for: Any, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(10)
    async with order_app_for(release_retry_after_seconds=0) as opened:
        placed = await opened.client.post(
            "/api/v1/orders",
            json=fleet.order_body(vendor, depot, [(product, 5)]),
            headers=hospital.headers,
        )
        order = placed.json()
        fleet.inventory.down = True
        cancelled = await opened.client.post(
            f"/api/v1/orders/{order['id']}/cancel", headers=hospital.headers
        )
        assert cancelled.status_code == 200
        fleet.inventory.down = False

        await opened.sweep()

    assert fleet.inventory.reservation(order["reservation_id"]).status == "released"
    assert depot.available(product) == 10
    assert await orders_db.reservation_status(order["id"]) == "released"
    # Still exactly one event for the cancellation: retries publish nothing.
    assert [e["type"] for e in await orders_db.events_of(order["id"])] == [
        "order.placed",
        "order.cancelled",
    ]
