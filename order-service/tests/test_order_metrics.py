"""The open-orders gauge (orders by status, emergency orders on the dashboard) follows an
order through its life and lets go of it once it is finished.

Other tests share the database, so each step checks the change from the figures just before.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import httpx
from prometheus_client import REGISTRY

if TYPE_CHECKING:
    from conftest import Fleet, OrderApp, PlaceOrder

EMERGENCY_PLACED = ("placed", "emergency")
EMERGENCY_CONFIRMED = ("confirmed", "emergency")


def published(status: str, priority: str) -> float | None:
    return REGISTRY.get_sample_value("flow_orders_open", {"status": status, "priority": priority})


async def test_open_orders_gauge_follows_an_emergency_order_until_it_is_cancelled(
    order_app: OrderApp, client: httpx.AsyncClient, fleet: Fleet, place_order: PlaceOrder
) -> None:
    gauges = order_app.app.state.open_order_gauges
    hospital, vendor, product = fleet.hospital(), fleet.vendor(), uuid.uuid4()
    depot = fleet.depot(vendor, {product: 10})

    start = await gauges.refresh()
    # Every status and priority is published, at zero when there is none.
    assert published("dispatched", "routine") == start[("dispatched", "routine")]

    order = await place_order(
        hospital, fleet.order_body(vendor, depot, [(product, 2)], priority="emergency")
    )
    placed = await gauges.refresh()
    assert placed[EMERGENCY_PLACED] == start[EMERGENCY_PLACED] + 1
    assert published(*EMERGENCY_PLACED) == placed[EMERGENCY_PLACED]

    confirmed = await client.post(
        f"/api/v1/orders/{order['id']}/confirm", json={"eta_minutes": 20}, headers=vendor.headers
    )
    assert confirmed.status_code == 200, confirmed.text
    moved = await gauges.refresh()
    assert moved[EMERGENCY_PLACED] == start[EMERGENCY_PLACED]
    assert moved[EMERGENCY_CONFIRMED] == start[EMERGENCY_CONFIRMED] + 1

    cancelled = await client.post(
        f"/api/v1/orders/{order['id']}/cancel",
        json={"reason": "Patient transferred"},
        headers=hospital.headers,
    )
    assert cancelled.status_code == 200, cancelled.text
    finished = await gauges.refresh()
    assert finished == start
    assert published(*EMERGENCY_CONFIRMED) == start[EMERGENCY_CONFIRMED]
