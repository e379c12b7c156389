"""Open orders by status and priority, read from the database on a timer.

Orders still in flight (placed, confirmed, dispatched) are what the operations
dashboard watches, above all the emergency ones. Finished orders are counted by
`flow_order_transitions_total` instead, so this never scans the whole history.
Every process and replica reports the same figures: dashboards take `max`, not `sum`.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from flow_shared.db import Database, scan_on_one_core
from flow_shared.metrics import business_gauge
from flow_shared.unit_of_work import unit_of_work
from order_service.models import PRIORITIES, Order, OrderStatus

# Scrapes come every 15 s; refreshing faster would only load the database.
GAUGE_REFRESH_INTERVAL_SECONDS = 15.0
OPEN_STATUSES = (OrderStatus.PLACED, OrderStatus.CONFIRMED, OrderStatus.DISPATCHED)

OPEN_ORDERS = business_gauge(
    "flow_orders_open",
    "Orders not finished yet (placed, confirmed, dispatched), by status and priority.",
    ("status", "priority"),
)

OpenOrderCounts = dict[tuple[str, str], int]


class OpenOrderGauges:
    def __init__(self, database: Database) -> None:
        self.database = database
        # A refresh started before a change must not publish after one started later.
        self._lock = asyncio.Lock()
        for status in OPEN_STATUSES:
            for priority in PRIORITIES:
                OPEN_ORDERS.labels(status.value, priority)

    async def read(self) -> OpenOrderCounts:
        counts = {
            (status.value, priority): 0 for status in OPEN_STATUSES for priority in PRIORITIES
        }
        async with unit_of_work(self.database) as uow:
            await scan_on_one_core(uow.session)
            rows = (
                await uow.session.execute(
                    select(Order.status, Order.priority, func.count())
                    .where(Order.status.in_([s.value for s in OPEN_STATUSES]))
                    .group_by(Order.status, Order.priority)
                )
            ).all()
        for status, priority, count in rows:
            counts[(status, priority)] = int(count)
        return counts

    async def refresh(self) -> OpenOrderCounts:
        async with self._lock:
            counts = await self.read()
            for (status, priority), count in counts.items():
                OPEN_ORDERS.labels(status, priority).set(count)
        return counts
