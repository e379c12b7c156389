"""The stock, reservation and low-stock-backlog gauges the dashboards and alerts read
follow what happens to stock: setting stock, holding it, and restocking above the threshold.

Other tests share the database, so each step checks the change from the figures just before.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import text

from inventory_service.metrics import InventoryFigures


def published(figures: InventoryFigures, category: str) -> None:
    """The registry holds exactly what the refresh read."""
    for state in ("on_hand", "reserved", "available"):
        labels = {"category": category, "state": state}
        value = REGISTRY.get_sample_value("flow_inventory_stock_units", labels)
        assert value == figures.units[(category, state)], labels
    assert REGISTRY.get_sample_value("flow_inventory_reservations_held") == (
        figures.reservations_held
    )
    assert REGISTRY.get_sample_value("flow_inventory_low_stock_items") == figures.low_stock_items


async def test_gauges_follow_stock_holds_and_the_low_stock_backlog(
    app: FastAPI, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    gauges = app.state.inventory_gauges
    product_id = next(iter(product_ids.values()))
    async with inv.engine.connect() as conn:
        category = await conn.scalar(
            text("SELECT category FROM products WHERE id = :id"), {"id": product_id}
        )
    vendor = await inv.vendor()
    depot = await inv.depot(vendor)

    start = await gauges.refresh()
    published(start, category)

    await inv.set_stock(vendor, depot, product_id, on_hand=10, low_stock_threshold=20)
    stocked = await gauges.refresh()
    assert stocked.units[(category, "on_hand")] == start.units[(category, "on_hand")] + 10
    assert stocked.units[(category, "available")] == start.units[(category, "available")] + 10
    assert stocked.low_stock_items == start.low_stock_items + 1  # 10 available < 20

    held = await inv.reserve(depot, [(product_id, 4)])
    assert held.status_code == 201, held.text
    holding = await gauges.refresh()
    assert holding.units[(category, "reserved")] == stocked.units[(category, "reserved")] + 4
    assert holding.units[(category, "available")] == stocked.units[(category, "available")] - 4
    assert holding.units[(category, "on_hand")] == stocked.units[(category, "on_hand")]
    assert holding.reservations_held == stocked.reservations_held + 1
    published(holding, category)

    await inv.set_stock(vendor, depot, product_id, on_hand=40, low_stock_threshold=20)
    released = await inv.http.post(
        f"/internal/reservations/{held.json()['reservation_id']}/release",
        headers=inv.internal_headers,
    )
    assert released.status_code == 200, released.text
    restocked = await gauges.refresh()
    assert restocked.low_stock_items == start.low_stock_items  # 40 available >= 20
    assert restocked.reservations_held == start.reservations_held
    assert restocked.units[(category, "reserved")] == start.units[(category, "reserved")]
    assert restocked.units[(category, "on_hand")] == start.units[(category, "on_hand")] + 40
    published(restocked, category)
