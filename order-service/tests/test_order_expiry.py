"""Unconfirmed orders expire per priority and their stock comes back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from flow_shared.testing.clock import MovableClock

if TYPE_CHECKING:
    from conftest import Fleet, OrderAppFactory, OrdersDb


async def test_an_unconfirmed_order_expires_releases_its_stock_and_says_so(
    order_app_for: OrderAppFactory, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(10)
    # Emergency orders get a tiny window here; urgent ones keep the hour of the default.
    async with order_app_for(confirm_window_emergency_seconds=0.001) as opened:
        client = opened.client
        overdue = await client.post(
            "/api/v1/orders",
            json=fleet.order_body(vendor, depot, [(product, 4)], priority="emergency"),
            headers=hospital.headers,
        )
        in_time = await client.post(
            "/api/v1/orders",
            json=fleet.order_body(vendor, depot, [(product, 1)], priority="urgent"),
            headers=hospital.headers,
        )
        assert depot.available(product) == 5

        result = await opened.sweep()
        expired = await client.get(
            f"/api/v1/orders/{overdue.json()['id']}", headers=hospital.headers
        )
        confirm_late = await client.post(
            f"/api/v1/orders/{overdue.json()['id']}/confirm", headers=vendor.headers
        )
        kept = await client.get(f"/api/v1/orders/{in_time.json()['id']}", headers=hospital.headers)

    assert result.expired >= 1
    assert expired.json()["status"] == "expired"
    assert expired.json()["status_history"][-1]["actor"] == "system"
    assert fleet.inventory.reservation(overdue.json()["reservation_id"]).status == "released"
    assert depot.available(product) == 9
    assert await orders_db.reservation_status(overdue.json()["id"]) == "released"
    assert confirm_late.status_code == 409
    assert kept.json()["status"] == "placed"
    assert fleet.inventory.reservation(in_time.json()["reservation_id"]).status == "held"

    events = await orders_db.events_of(overdue.json()["id"])
    assert [e["type"] for e in events] == ["order.placed", "order.expired"]
    assert events[1]["data"]["actor_id"] is None
    assert events[1]["correlation_id"]  # the sweep run's own id
    assert events[1]["correlation_id"] != events[0]["correlation_id"]


async def test_an_overdue_order_cannot_be_confirmed_even_before_the_sweeper_runs(
    order_app_for: OrderAppFactory, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(10)
    async with order_app_for(routine_hold_minutes=0.001 / 60) as opened:
        placed = await opened.client.post(
            "/api/v1/orders",
            json=fleet.order_body(vendor, depot, [(product, 2)], priority="routine"),
            headers=hospital.headers,
        )
        order_id = placed.json()["id"]

        late = await opened.client.post(
            f"/api/v1/orders/{order_id}/confirm", headers=vendor.headers
        )
        await opened.sweep()  # and then it does expire

    assert late.status_code == 409
    assert late.json()["type"].endswith("/order-expired")
    assert not fleet.inventory.calls("POST", r".*/extend")  # an expired order keeps no hold
    assert [e["type"] for e in await orders_db.events_of(order_id)] == [
        "order.placed",
        "order.expired",
    ]
    assert depot.available(product) == 10


async def test_an_expiry_with_inventory_down_is_recorded_and_released_later(
    order_app_for: OrderAppFactory, fleet: Fleet, orders_db: OrdersDb
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(10)
    async with order_app_for(
        confirm_window_emergency_seconds=0.001, release_retry_after_seconds=0
    ) as opened:
        placed = await opened.client.post(
            "/api/v1/orders",
            json=fleet.order_body(vendor, depot, [(product, 3)], priority="emergency"),
            headers=hospital.headers,
        )
        order_id = placed.json()["id"]
        fleet.inventory.down = True
        await opened.sweep()
        status_while_down = await orders_db.reservation_status(order_id)
        fleet.inventory.down = False
        await opened.sweep()

    assert status_while_down == "release_pending"
    assert await orders_db.reservation_status(order_id) == "released"
    assert depot.available(product) == 10
    assert [e["type"] for e in await orders_db.events_of(order_id)] == [
        "order.placed",
        "order.expired",
    ]


async def test_the_sweeper_reads_the_apps_clock(
    order_app_for: OrderAppFactory, fleet: Fleet
) -> None:
    hospital, vendor, product, depot = fleet.stocked_depot(10)
    clock = MovableClock(datetime.now(UTC))
    async with order_app_for(clock=clock) as opened:
        placed = await opened.client.post(
            "/api/v1/orders",
            json=fleet.order_body(vendor, depot, [(product, 2)], priority="urgent"),
            headers=hospital.headers,
        )
        assert placed.status_code == 201, placed.text
        path = f"/api/v1/orders/{placed.json()['id']}"
        # Within the urgent confirm window (an hour): nothing to expire.
        await opened.sweep()
        before = await opened.client.get(path, headers=hospital.headers)
        # Two hours on, by the app's clock alone: overdue, and expired without waiting.
        clock.advance(hours=2)
        await opened.sweep()
        after = await opened.client.get(path, headers=hospital.headers)

    assert before.json()["status"] == "placed"
    assert after.json()["status"] == "expired"
    assert depot.available(product) == 10
