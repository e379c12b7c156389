"""Cylinder deposits and serials on orders: an order keeps the deposits its quote carried
(and says what the hospital owes), dispatch names the serials of its cylinder lines and
deliver hands them over and takes empties back, both through inventory-service's ledger
(stubbed at its HTTP boundary), whose refusals reach the vendor unchanged."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import FakeDepot, Fleet, OrdersDb, Org, PlaceOrder

DISPATCH_PATH = "/internal/cylinders/dispatch"
DELIVER_PATH = "/internal/cylinders/deliver"


class World:
    """A hospital, a vendor whose depot stocks a cylinder (12.50 deposit each) and a
    regulator (no deposit), and five full serials of the cylinder at that depot."""

    def __init__(self, fleet: Fleet, place_order: PlaceOrder) -> None:
        self.fleet = fleet
        self.place_order = place_order
        self.hospital: Org = fleet.hospital()
        self.vendor: Org = fleet.vendor()
        self.cylinder, self.regulator = uuid.uuid4(), uuid.uuid4()
        self.depot: FakeDepot = fleet.depot(self.vendor, {self.cylinder: 20, self.regulator: 20})
        fleet.pricing.deposits[(self.vendor.org_id, self.cylinder)] = Decimal("12.50")
        self.serials = [f"CYL-{n:03d}" for n in range(1, 6)]
        for serial in self.serials:
            fleet.inventory.add_cylinder(
                self.vendor.org_id, self.cylinder, self.depot.depot_id, serial
            )

    def status_of(self, serial: str) -> str:
        return self.fleet.inventory.cylinders[(self.vendor.org_id, serial)].status

    async def order(self, cylinders: int = 2, regulators: int = 1) -> dict[str, Any]:
        lines = [(self.cylinder, cylinders)] + (
            [(self.regulator, regulators)] if regulators else []
        )
        body = self.fleet.order_body(self.vendor, self.depot, lines)
        return await self.place_order(self.hospital, body)

    async def confirmed(self, client: httpx.AsyncClient, **order: int) -> dict[str, Any]:
        placed = await self.order(**order)
        response = await move(client, self.vendor, placed, "confirm")
        assert response.status_code == 200, response.text
        return placed


@pytest.fixture
def world(fleet: Fleet, place_order: PlaceOrder) -> World:
    return World(fleet, place_order)


async def move(
    client: httpx.AsyncClient,
    org: Org,
    order: dict[str, Any],
    action: str,
    body: dict[str, Any] | None = None,
) -> httpx.Response:
    return await client.post(
        f"/api/v1/orders/{order['id']}/{action}", json=body, headers=org.headers
    )


async def current(client: httpx.AsyncClient, org: Org, order: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(f"/api/v1/orders/{order['id']}", headers=org.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def cylinder_calls(fleet: Fleet, path: str) -> list[dict[str, Any]]:
    return [json.loads(r.content) for r in fleet.inventory.calls("POST", path)]


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"].endswith(f"/{code}"), body
    return body


# --- deposits on the order -----------------------------------------------------------------


async def test_an_order_keeps_its_deposits_and_shows_the_amount_due(
    client: httpx.AsyncClient, world: World, orders_db: OrdersDb
) -> None:
    order = await world.order(cylinders=2, regulators=1)

    assert order["deposit_total"] == "25.00"
    assert [(i["product_id"], i["deposit_per_unit"]) for i in order["items"]] == [
        (str(world.cylinder), "12.50"),
        (str(world.regulator), "0.00"),
    ]
    # The deposit is charged next to the total, never inside it.
    parts = ("subtotal", "delivery_fee", "surcharge", "tax")
    assert Decimal(order["total"]) == sum((Decimal(order[p]) for p in parts), Decimal(0))
    assert Decimal(order["amount_due"]) == Decimal(order["total"]) + Decimal("25.00")
    assert order["cylinders_tracked"] is False
    stored = await current(client, world.hospital, order)
    assert (stored["deposit_total"], stored["amount_due"]) == ("25.00", order["amount_due"])
    assert [i["deposit_per_unit"] for i in stored["items"]] == ["12.50", "0.00"]

    await move(client, world.vendor, order, "confirm")
    events = await orders_db.events_of(order["id"])
    assert [e["type"] for e in events] == ["order.placed", "order.confirmed"]
    assert [e["data"]["deposit_total"] for e in events] == ["25.00", "25.00"]
    assert [i["deposit_per_unit"] for i in events[0]["data"]["items"]] == ["12.50", "0.00"]


async def test_a_quote_from_a_pricing_without_deposits_makes_an_order_with_none(
    client: httpx.AsyncClient, world: World, orders_db: OrdersDb
) -> None:
    world.fleet.pricing.sends_deposits = False

    order = await world.order()

    assert order["deposit_total"] == "0.00"
    assert order["amount_due"] == order["total"]
    assert {i["deposit_per_unit"] for i in order["items"]} == {"0.00"}
    assert (await current(client, world.hospital, order))["deposit_total"] == "0.00"
    events = await orders_db.events_of(order["id"])
    assert events[0]["data"]["deposit_total"] == "0.00"


async def test_a_quote_whose_deposits_do_not_add_up_is_refused_and_nothing_kept(
    client: httpx.AsyncClient, world: World, orders_db: OrdersDb
) -> None:
    original = world.fleet.pricing.handle

    def inflated(request: httpx.Request) -> httpx.Response:
        answer = original(request)
        quote = answer.json()
        quote["deposit_total"] = str(Decimal(quote["deposit_total"]) + 1)
        return httpx.Response(answer.status_code, json=quote)

    world.fleet.pricing.handle = inflated  # type: ignore[method-assign]
    body = world.fleet.order_body(world.vendor, world.depot, [(world.cylinder, 2)])

    response = await client.post("/api/v1/orders", json=body, headers=world.hospital.headers)

    assert response.status_code == 502, response.text
    assert await orders_db.order_ids_of(world.hospital.org_id) == []


async def test_a_direct_order_keeps_its_deposits_too(
    client: httpx.AsyncClient, world: World, orders_db: OrdersDb
) -> None:
    body = {
        "product_id": str(world.cylinder),
        "quantity": 3,
        "delivery": {"lat": world.fleet.home[0], "lon": world.fleet.home[1], "address": "A&E"},
    }

    response = await client.post("/api/v1/orders/direct", json=body, headers=world.hospital.headers)

    assert response.status_code == 201, response.text
    order = response.json()["order"]
    assert order["deposit_total"] == "37.50"
    assert Decimal(order["amount_due"]) == Decimal(order["total"]) + Decimal("37.50")
    assert (await orders_db.events_of(order["id"]))[0]["data"]["deposit_total"] == "37.50"


# --- dispatch ------------------------------------------------------------------------------


async def test_dispatch_names_the_serials_with_the_order_lines_and_tracks_them(
    client: httpx.AsyncClient, world: World, orders_db: OrdersDb
) -> None:
    order = await world.confirmed(client)

    response = await move(client, world.vendor, order, "dispatch", {"cylinders": world.serials[:2]})

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "dispatched"
    assert response.json()["cylinders_tracked"] is True
    [sent] = cylinder_calls(world.fleet, DISPATCH_PATH)
    assert sent == {
        "order_id": order["id"],
        "vendor_id": str(world.vendor.org_id),
        "depot_id": str(world.depot.depot_id),
        "hospital_org_id": str(world.hospital.org_id),
        "lines": [
            {"product_id": str(world.cylinder), "quantity": 2},
            {"product_id": str(world.regulator), "quantity": 1},
        ],
        "serials": world.serials[:2],
        "actor_id": str(world.vendor.user_id),
    }
    assert [world.status_of(s) for s in world.serials[:3]] == ["in_transit", "in_transit", "full"]
    events = await orders_db.events_of(order["id"])
    assert events[-1]["type"] == "order.dispatched"
    assert events[-1]["data"]["deposit_total"] == "25.00"


async def test_refused_serials_reach_the_vendor_unchanged_and_the_order_stays(
    client: httpx.AsyncClient, world: World, orders_db: OrdersDb
) -> None:
    inventory = world.fleet.inventory
    inventory.cylinders[(world.vendor.org_id, "CYL-002")].status = "empty"
    inventory.cylinders[(world.vendor.org_id, "CYL-003")].hydrotest_due = date.today() - timedelta(
        days=1
    )
    order = await world.confirmed(client, cylinders=3)
    before = await orders_db.events_of(order["id"])

    response = await move(
        client,
        world.vendor,
        order,
        "dispatch",
        {"cylinders": ["CYL-001", "CYL-002", "CYL-003", "NOPE-9"]},
    )

    body = assert_problem(response, 409, "cylinders-refused")
    assert body["cylinders"] == [
        {"serial": "CYL-002", "reason": "not_full"},
        {"serial": "CYL-003", "reason": "hydrotest_overdue"},
        {"serial": "NOPE-9", "reason": "unknown"},
    ]
    assert body["lines"] == []
    after = await current(client, world.vendor, order)
    assert (after["status"], after["cylinders_tracked"]) == ("confirmed", False)
    assert await orders_db.events_of(order["id"]) == before
    assert world.status_of("CYL-001") == "full"

    short = await move(client, world.vendor, order, "dispatch", {"cylinders": ["CYL-001"]})

    body = assert_problem(short, 409, "cylinders-refused")
    assert body["cylinders"] == []
    assert body["lines"] == [{"product_id": str(world.cylinder), "quantity": 3, "named": 1}]
    assert (await current(client, world.vendor, order))["status"] == "confirmed"


async def test_an_order_with_deposits_cannot_be_dispatched_without_its_serials(
    client: httpx.AsyncClient, world: World
) -> None:
    order = await world.confirmed(client)

    for body in (None, {}):
        response = await move(client, world.vendor, order, "dispatch", body)
        assert_problem(response, 409, "cylinders-required")

    assert cylinder_calls(world.fleet, DISPATCH_PATH) == []
    assert (await current(client, world.vendor, order))["status"] == "confirmed"


async def test_inventory_down_at_dispatch_is_503_and_the_order_is_unchanged(
    client: httpx.AsyncClient, world: World, orders_db: OrdersDb
) -> None:
    order = await world.confirmed(client)
    before = await orders_db.events_of(order["id"])
    world.fleet.inventory.down = True

    response = await move(client, world.vendor, order, "dispatch", {"cylinders": world.serials[:2]})

    assert_problem(response, 503, "upstream-unavailable")
    world.fleet.inventory.down = False
    after = await current(client, world.vendor, order)
    assert (after["status"], after["cylinders_tracked"]) == ("confirmed", False)
    assert await orders_db.events_of(order["id"]) == before


async def test_a_dispatch_whose_answer_was_lost_converges_when_the_vendor_retries(
    client: httpx.AsyncClient, world: World, orders_db: OrdersDb
) -> None:
    order = await world.confirmed(client)
    world.fleet.inventory.lose_answer_to.add(DISPATCH_PATH)

    lost = await move(client, world.vendor, order, "dispatch", {"cylinders": world.serials[:2]})

    assert lost.status_code == 503, lost.text
    assert (await current(client, world.vendor, order))["status"] == "confirmed"
    # inventory did move them; the retry (with one serial swapped) is idempotent there.
    retried = await move(client, world.vendor, order, "dispatch", {"cylinders": world.serials[1:3]})

    assert retried.status_code == 200, retried.text
    assert [world.status_of(s) for s in world.serials[:3]] == ["full", "in_transit", "in_transit"]
    events = await orders_db.events_of(order["id"])
    assert [e["type"] for e in events].count("order.dispatched") == 1


async def test_two_dispatches_at_the_same_instant_move_the_order_once(
    client: httpx.AsyncClient, world: World, orders_db: OrdersDb
) -> None:
    order = await world.confirmed(client)

    responses = await asyncio.gather(
        move(client, world.vendor, order, "dispatch", {"cylinders": world.serials[:2]}),
        move(client, world.vendor, order, "dispatch", {"cylinders": world.serials[2:4]}),
    )

    assert sorted(r.status_code for r in responses) == [200, 409]
    [refused] = [r for r in responses if r.status_code == 409]
    assert_problem(refused, 409, "illegal-transition")
    # The loser waited for the row lock, then found the order dispatched: it never
    # reached inventory-service.
    [sent] = cylinder_calls(world.fleet, DISPATCH_PATH)
    assert sorted(world.status_of(s) for s in world.serials[:4]).count("in_transit") == 2
    assert [s for s in world.serials if world.status_of(s) == "in_transit"] == sent["serials"]
    events = await orders_db.events_of(order["id"])
    assert [e["type"] for e in events].count("order.dispatched") == 1


@pytest.mark.parametrize(
    "body",
    [
        {"cylinders": ["-starts-with-dash"]},
        {"cylinders": ["has space"]},
        {"cylinders": ["A" * 41]},
        {"cylinders": ["CYL-001", "CYL-001"]},
        {"cylinders": [f"S{n}" for n in range(1001)]},
        {"cylinders": "CYL-001"},
        {"cylinders": ["CYL-001"], "extra": 1},
    ],
)
async def test_invalid_dispatch_bodies_are_422_and_change_nothing(
    client: httpx.AsyncClient, world: World, body: dict[str, Any]
) -> None:
    order = await world.confirmed(client)

    response = await move(client, world.vendor, order, "dispatch", body)

    assert_problem(response, 422, "validation-error")
    assert cylinder_calls(world.fleet, DISPATCH_PATH) == []
    assert (await current(client, world.vendor, order))["status"] == "confirmed"


async def test_another_vendors_order_is_404_and_inventory_is_not_asked(
    client: httpx.AsyncClient, world: World
) -> None:
    order = await world.confirmed(client)
    stranger = world.fleet.vendor()

    for action, body in (
        ("dispatch", {"cylinders": world.serials[:2]}),
        ("deliver", {"returned_cylinders": world.serials[:1]}),
    ):
        response = await move(client, stranger, order, action, body)
        assert_problem(response, 404, "order-not-found")

    assert cylinder_calls(world.fleet, DISPATCH_PATH) == []
    assert cylinder_calls(world.fleet, DELIVER_PATH) == []


async def test_orders_without_deposits_move_without_a_body_and_never_reach_the_ledger(
    client: httpx.AsyncClient, world: World, orders_db: OrdersDb
) -> None:
    world.fleet.pricing.deposits.clear()
    order = await world.confirmed(client)

    dispatched = await move(client, world.vendor, order, "dispatch")
    delivered = await move(client, world.vendor, order, "deliver")

    assert [dispatched.status_code, delivered.status_code] == [200, 200]
    assert delivered.json()["status"] == "delivered"
    assert delivered.json()["cylinders_tracked"] is False
    assert cylinder_calls(world.fleet, DISPATCH_PATH) == []
    assert cylinder_calls(world.fleet, DELIVER_PATH) == []


# --- deliver -------------------------------------------------------------------------------


async def dispatched_order(client: httpx.AsyncClient, world: World) -> dict[str, Any]:
    order = await world.confirmed(client)
    response = await move(client, world.vendor, order, "dispatch", {"cylinders": world.serials[:2]})
    assert response.status_code == 200, response.text
    return order


def held_empty(world: World, serial: str) -> None:
    """A cylinder of an earlier order, now empty at the hospital."""
    cylinder = world.fleet.inventory.add_cylinder(
        world.vendor.org_id, world.cylinder, world.depot.depot_id, serial, status="at_hospital"
    )
    cylinder.holder = world.hospital.org_id
    cylinder.deposit = Decimal("12.50")
    cylinder.deposit_order_id = uuid.uuid4()


async def test_deliver_hands_over_the_tracked_cylinders_with_their_deposits_and_takes_returns(
    client: httpx.AsyncClient, world: World, orders_db: OrdersDb
) -> None:
    order = await dispatched_order(client, world)
    held_empty(world, "OLD-1")

    response = await move(client, world.vendor, order, "deliver", {"returned_cylinders": ["OLD-1"]})

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "delivered"
    [sent] = cylinder_calls(world.fleet, DELIVER_PATH)
    assert sent == {
        "order_id": order["id"],
        "vendor_id": str(world.vendor.org_id),
        "depot_id": str(world.depot.depot_id),
        "hospital_org_id": str(world.hospital.org_id),
        "returned": ["OLD-1"],
        "deposits": [
            {"product_id": str(world.cylinder), "deposit_per_unit": "12.50", "currency": "NGN"},
            {"product_id": str(world.regulator), "deposit_per_unit": "0.00", "currency": "NGN"},
        ],
        "actor_id": str(world.vendor.user_id),
    }
    ledger = world.fleet.inventory.cylinders
    for serial in world.serials[:2]:
        cylinder = ledger[(world.vendor.org_id, serial)]
        assert (cylinder.status, cylinder.holder, cylinder.deposit) == (
            "at_hospital",
            world.hospital.org_id,
            Decimal("12.50"),
        )
    assert world.status_of("OLD-1") == "empty"
    # The stock hold was committed as for any delivery.
    assert world.fleet.inventory.reservation(order["reservation_id"]).status == "committed"
    events = await orders_db.events_of(order["id"])
    assert events[-1]["type"] == "order.delivered"
    assert events[-1]["data"]["deposit_total"] == "25.00"


async def test_an_untracked_order_delivering_returns_calls_the_ledger(
    client: httpx.AsyncClient, world: World
) -> None:
    world.fleet.pricing.deposits.clear()
    order = await world.confirmed(client)
    await move(client, world.vendor, order, "dispatch")
    held_empty(world, "OLD-2")

    response = await move(client, world.vendor, order, "deliver", {"returned_cylinders": ["OLD-2"]})

    assert response.status_code == 200, response.text
    [sent] = cylinder_calls(world.fleet, DELIVER_PATH)
    assert sent["returned"] == ["OLD-2"]
    assert world.status_of("OLD-2") == "empty"


async def test_a_refused_return_reaches_the_vendor_and_the_order_stays_dispatched(
    client: httpx.AsyncClient, world: World, orders_db: OrdersDb
) -> None:
    order = await dispatched_order(client, world)
    before = await orders_db.events_of(order["id"])

    response = await move(
        client, world.vendor, order, "deliver", {"returned_cylinders": ["CYL-005", "GHOST"]}
    )

    body = assert_problem(response, 409, "cylinders-refused")
    assert body["cylinders"] == [
        {"serial": "CYL-005", "reason": "not_held"},
        {"serial": "GHOST", "reason": "unknown"},
    ]
    assert (await current(client, world.vendor, order))["status"] == "dispatched"
    assert await orders_db.events_of(order["id"]) == before
    assert world.status_of("CYL-001") == "in_transit"


async def test_the_ledger_down_at_deliver_is_503_and_the_order_stays_dispatched(
    client: httpx.AsyncClient, world: World, orders_db: OrdersDb
) -> None:
    order = await dispatched_order(client, world)
    before = await orders_db.events_of(order["id"])

    def ledger_down(request: httpx.Request) -> None:
        # Only the cylinder route fails: the stock commit before it goes through.
        if request.url.path == DELIVER_PATH:
            raise httpx.ConnectError("connection refused", request=request)

    world.fleet.inventory.on_request = ledger_down

    response = await move(client, world.vendor, order, "deliver")

    assert_problem(response, 503, "upstream-unavailable")
    assert (await current(client, world.vendor, order))["status"] == "dispatched"
    assert await orders_db.events_of(order["id"]) == before
    assert world.status_of("CYL-001") == "in_transit"
    # The retry finds the hold already committed and converges.
    world.fleet.inventory.on_request = None
    retried = await move(client, world.vendor, order, "deliver")
    assert retried.status_code == 200, retried.text
    assert world.status_of("CYL-001") == "at_hospital"


async def test_a_delivery_whose_answer_was_lost_is_retried_without_a_second_return(
    client: httpx.AsyncClient, world: World, orders_db: OrdersDb
) -> None:
    order = await dispatched_order(client, world)
    held_empty(world, "OLD-3")
    world.fleet.inventory.lose_answer_to.add(DELIVER_PATH)

    lost = await move(client, world.vendor, order, "deliver", {"returned_cylinders": ["OLD-3"]})

    assert lost.status_code == 503, lost.text
    assert (await current(client, world.vendor, order))["status"] == "dispatched"
    retried = await move(client, world.vendor, order, "deliver", {"returned_cylinders": ["OLD-3"]})

    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "delivered"
    assert len(cylinder_calls(world.fleet, DELIVER_PATH)) == 2
    # inventory-service took the empty back once, whatever the retries.
    assert [e["serial"] for e in world.fleet.inventory.returned_events] == ["OLD-3"]
    events = await orders_db.events_of(order["id"])
    assert [e["type"] for e in events].count("order.delivered") == 1


@pytest.mark.parametrize(
    "body",
    [
        {"returned_cylinders": ["bad serial"]},
        {"returned_cylinders": ["OLD-1", "OLD-1"]},
        {"returned_cylinders": [f"S{n}" for n in range(1001)]},
        {"returned": ["OLD-1"]},
    ],
)
async def test_invalid_deliver_bodies_are_422_and_change_nothing(
    client: httpx.AsyncClient, world: World, body: dict[str, Any]
) -> None:
    order = await dispatched_order(client, world)

    response = await move(client, world.vendor, order, "deliver", body)

    assert_problem(response, 422, "validation-error")
    assert cylinder_calls(world.fleet, DELIVER_PATH) == []
    assert (await current(client, world.vendor, order))["status"] == "dispatched"
