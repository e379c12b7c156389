"""Stock and reservation gauges, read from the database on a timer.

The figures are facts about the shared database, not about this process, so every
process and replica reports the same values: dashboards and alerts take `max`, not `sum`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import func, select

from flow_shared.db import Database, scan_on_one_core
from flow_shared.metrics import business_gauge
from flow_shared.unit_of_work import unit_of_work
from inventory_service.models import Product, ProductCategory, Reservation, ReservationStatus, Stock

# Scrapes come every 15 s; refreshing faster would only load the database.
GAUGE_REFRESH_INTERVAL_SECONDS = 15.0
STOCK_STATES = ("on_hand", "reserved", "available")

STOCK_UNITS = business_gauge(
    "flow_inventory_stock_units",
    "Units of stock across all depots, by product category and state "
    "(on_hand, reserved by holds, available = on_hand - reserved).",
    ("category", "state"),
)
RESERVATIONS_HELD = business_gauge(
    "flow_inventory_reservations_held",
    "Reservations currently holding stock (status held).",
)
LOW_STOCK_ITEMS = business_gauge(
    "flow_inventory_low_stock_items",
    "Stock lines (a product at a depot) whose available quantity is below their "
    "low-stock threshold: the low-stock backlog vendors have not restocked yet.",
)


@dataclass(frozen=True)
class InventoryFigures:
    units: dict[tuple[str, str], int]
    reservations_held: int
    low_stock_items: int


class InventoryGauges:
    """Reads the inventory figures and publishes them as gauges."""

    def __init__(self, database: Database) -> None:
        self.database = database
        # A refresh started before a change must not publish after one started later.
        self._lock = asyncio.Lock()
        for category in ProductCategory:
            for state in STOCK_STATES:
                STOCK_UNITS.labels(category.value, state)

    async def read(self) -> InventoryFigures:
        units = {(c.value, state): 0 for c in ProductCategory for state in STOCK_STATES}
        async with unit_of_work(self.database) as uow:
            await scan_on_one_core(uow.session)
            # One pass over the stock table for the units and the low-stock count: with a
            # million stock lines, each pass is a noticeable burst of database CPU.
            rows = (
                await uow.session.execute(
                    select(
                        Product.category,
                        func.coalesce(func.sum(Stock.on_hand), 0),
                        func.coalesce(func.sum(Stock.reserved), 0),
                        func.count().filter(
                            Stock.on_hand - Stock.reserved < Stock.low_stock_threshold
                        ),
                    )
                    .join(Product, Product.id == Stock.product_id)
                    .group_by(Product.category)
                )
            ).all()
            held = await uow.session.scalar(
                select(func.count())
                .select_from(Reservation)
                .where(Reservation.status == ReservationStatus.HELD.value)
            )
        low = 0
        for category, on_hand, reserved, below_threshold in rows:
            units[(category, "on_hand")] = int(on_hand)
            units[(category, "reserved")] = int(reserved)
            units[(category, "available")] = int(on_hand) - int(reserved)
            low += int(below_threshold)
        return InventoryFigures(units, int(held or 0), low)

    async def refresh(self) -> InventoryFigures:
        async with self._lock:
            figures = await self.read()
            for (category, state), value in figures.units.items():
                STOCK_UNITS.labels(category, state).set(value)
            RESERVATIONS_HELD.set(figures.reservations_held)
            LOW_STOCK_ITEMS.set(figures.low_stock_items)
        return figures
