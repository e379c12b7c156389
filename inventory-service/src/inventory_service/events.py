"""Events inventory-service publishes (through its outbox, in the caller's transaction).

Published `data` is a contract with consumers: add fields, never rename or remove.
- inventory.stock_changed {depot_id, vendor_id, product_id, sku, on_hand, reserved, available,
  low_stock_threshold, reason, delta, reference, note, actor}
  (reason is the movement kind: set, adjust, reserve, release, commit, expire)
- inventory.low_stock {depot_id, vendor_id, product_id, sku, available, low_stock_threshold}
- inventory.reservation_expired {reservation_id, order_id, depot_id, vendor_id, items}
- supply.runway_low / supply.runway_critical {site_id, hospital_org_id, site_name, level,
  hours_left, runs_out_at, gas_liters, consumption_lpm, alert_hours, critical_hours, as_of}
  (a site's oxygen crossed its alert or critical hours: once per crossing; hours rounded
  down to 0.01, litres to 0.1; moments RFC 3339 UTC)
- supply.reported {site_id, hospital_org_id, consumption_lpm, as_of,
  daily_units: [{product_id, units_per_day}]} (a hospital reported a site's supply; the
  units of each oxygen product its rate uses a day, for order-service's ALLOCATION_DAYS
  cap floor)
- cylinder.returned {return_id, cylinder_id, serial, vendor_id, product_id,
  hospital_org_id, depot_id, deposit_order_id, returned_order_id, deposit, currency,
  returned_at} (a hospital gave a cylinder back: on a delivery, returned_order_id is
  that order, on a collection null; deposit is what deposit_order_id charged for it,
  a decimal string, "0.00" when none; payment-service credits it once per return_id)

What it consumes is in consumers.py.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.events.outbox import add_event
from inventory_service.models import outbox

PRODUCER = "inventory-service"
STOCK_CHANGED = "inventory.stock_changed"
LOW_STOCK = "inventory.low_stock"
RESERVATION_EXPIRED = "inventory.reservation_expired"
SUPPLY_REPORTED = "supply.reported"
RUNWAY_LOW = "supply.runway_low"
RUNWAY_CRITICAL = "supply.runway_critical"
CYLINDER_RETURNED = "cylinder.returned"


@dataclass(frozen=True, slots=True)
class StockSnapshot:
    """A stock row right after a change, as events describe it."""

    depot_id: uuid.UUID
    vendor_id: uuid.UUID
    product_id: uuid.UUID
    sku: str
    on_hand: int
    reserved: int
    low_stock_threshold: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


async def stock_changed(
    session: AsyncSession,
    stock: StockSnapshot,
    *,
    kind: str,
    delta: int,
    reference: str | None,
    note: str | None,
    actor: str,
) -> None:
    await add_event(
        session,
        outbox,
        event_type=STOCK_CHANGED,
        producer=PRODUCER,
        data={
            **_stock_data(stock),
            "on_hand": stock.on_hand,
            "reserved": stock.reserved,
            "reason": kind,
            "delta": delta,
            "reference": reference,
            "note": note,
            "actor": actor,
        },
    )


async def low_stock(session: AsyncSession, stock: StockSnapshot) -> None:
    await add_event(
        session,
        outbox,
        event_type=LOW_STOCK,
        producer=PRODUCER,
        data=_stock_data(stock),
    )


def _stock_data(stock: StockSnapshot) -> dict[str, Any]:
    """What both stock events say of the stock row: which one, and how much is free."""
    return {
        "depot_id": str(stock.depot_id),
        "vendor_id": str(stock.vendor_id),
        "product_id": str(stock.product_id),
        "sku": stock.sku,
        "available": stock.available,
        "low_stock_threshold": stock.low_stock_threshold,
    }


async def reservation_expired(
    session: AsyncSession,
    *,
    reservation_id: uuid.UUID,
    order_id: uuid.UUID,
    depot_id: uuid.UUID,
    vendor_id: uuid.UUID,
    items: list[dict[str, Any]],
) -> None:
    await add_event(
        session,
        outbox,
        event_type=RESERVATION_EXPIRED,
        producer=PRODUCER,
        data={
            "reservation_id": str(reservation_id),
            "order_id": str(order_id),
            "depot_id": str(depot_id),
            "vendor_id": str(vendor_id),
            "items": items,
        },
    )


def _rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def supply_reported(
    session: AsyncSession,
    *,
    site_id: uuid.UUID,
    hospital_org_id: uuid.UUID,
    consumption_lpm: Decimal,
    as_of: datetime,
    daily_units: dict[uuid.UUID, Decimal],
) -> None:
    await add_event(
        session,
        outbox,
        event_type=SUPPLY_REPORTED,
        producer=PRODUCER,
        data={
            "site_id": str(site_id),
            "hospital_org_id": str(hospital_org_id),
            "consumption_lpm": float(consumption_lpm),
            "as_of": _rfc3339(as_of),
            "daily_units": [
                {"product_id": str(product_id), "units_per_day": float(units)}
                for product_id, units in sorted(daily_units.items())
            ],
        },
    )


async def runway_alert(
    session: AsyncSession,
    *,
    site_id: uuid.UUID,
    hospital_org_id: uuid.UUID,
    site_name: str | None,
    level: str,
    hours_left: Decimal,
    runs_out_at: datetime | None,
    gas_liters: Decimal,
    consumption_lpm: Decimal,
    alert_hours: Decimal,
    critical_hours: Decimal,
    as_of: datetime,
) -> None:
    await add_event(
        session,
        outbox,
        event_type=RUNWAY_CRITICAL if level == "critical" else RUNWAY_LOW,
        producer=PRODUCER,
        data={
            "site_id": str(site_id),
            "hospital_org_id": str(hospital_org_id),
            "site_name": site_name,
            "level": level,
            "hours_left": float(hours_left),
            "runs_out_at": _rfc3339(runs_out_at) if runs_out_at is not None else None,
            "gas_liters": float(gas_liters.quantize(Decimal("0.1"), rounding=ROUND_DOWN)),
            "consumption_lpm": float(consumption_lpm),
            "alert_hours": float(alert_hours),
            "critical_hours": float(critical_hours),
            "as_of": _rfc3339(as_of),
        },
    )


async def cylinder_returned(
    session: AsyncSession,
    *,
    cylinder_id: uuid.UUID,
    serial: str,
    vendor_id: uuid.UUID,
    product_id: uuid.UUID,
    hospital_org_id: uuid.UUID,
    depot_id: uuid.UUID,
    deposit_order_id: uuid.UUID | None,
    returned_order_id: uuid.UUID | None,
    deposit: Decimal,
    currency: str | None,
    returned_at: datetime,
) -> uuid.UUID:
    """Returns the return's id (what payment-service credits the deposit once by)."""
    return_id = uuid.uuid4()
    await add_event(
        session,
        outbox,
        event_type=CYLINDER_RETURNED,
        producer=PRODUCER,
        data={
            "return_id": str(return_id),
            "cylinder_id": str(cylinder_id),
            "serial": serial,
            "vendor_id": str(vendor_id),
            "product_id": str(product_id),
            "hospital_org_id": str(hospital_org_id),
            "depot_id": str(depot_id),
            "deposit_order_id": str(deposit_order_id) if deposit_order_id else None,
            "returned_order_id": str(returned_order_id) if returned_order_id else None,
            "deposit": str(deposit.quantize(Decimal("0.01"))),
            "currency": currency,
            "returned_at": _rfc3339(returned_at),
        },
    )
    return return_id
