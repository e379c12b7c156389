"""Events order-service publishes (through its outbox, in the caller's transaction).

`data` is the contract with consumers: add fields, never rename or remove them.
Every order event has the same shape, whatever the status; money is a string:

    {order_id, hospital_org_id, vendor_id, depot_id, status, priority, payment_method,
     total, deposit_total (refundable cylinder deposits charged next to total; "0.00"
     when none), currency,
     items: [{product_id, quantity, unit_price, line_total, deposit_per_unit}],
     actor_id (null: Flow itself), at,
     site_id (null: delivered to a free `delivery` address, not to a site),
     eta (RFC3339 UTC: when the order is expected at its destination, = the moment it
          was confirmed + eta_minutes; set on confirmed, dispatched and delivered events of
          an order with an ETA, null on every other event),
     reason (rejected, cancelled, failed), eta_minutes (confirmed), sos_id (SOS orders)}
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.events.outbox import add_event
from order_service.models import Order, OrderStatus, SosOffer, SosRequest, outbox

PRODUCER = "order-service"

# SOS broadcast event types (SPEC; data contracts in the SOS service module).
SOS_OPENED = "sos.opened"
SOS_REQUEST = "sos.request"
SOS_ESCALATED = "sos.escalated"
SOS_FULFILLED = "sos.fulfilled"
SOS_CLOSED = "sos.closed"
SOS_UNFILLED = "sos.unfilled"
SOS_CANCELLED = "sos.cancelled"


def event_type(status: OrderStatus) -> str:
    return f"order.{status.value}"


def rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


# Statuses in which the order is on its way: its ETA still means something.
ETA_STATUSES = frozenset({OrderStatus.CONFIRMED, OrderStatus.DISPATCHED, OrderStatus.DELIVERED})


def confirmed_at(order: Order) -> datetime | None:
    """When the order was confirmed, from its status history (state.apply_transition)."""
    for change in reversed(order.status_history or []):
        if change["status"] == OrderStatus.CONFIRMED:
            return datetime.fromisoformat(change["at"])
    return None


def order_eta(order: Order) -> datetime | None:
    """The moment the order is expected at its destination, if it is on its way."""
    if order.eta_minutes is None or OrderStatus(order.status) not in ETA_STATUSES:
        return None
    confirmed = confirmed_at(order)
    return confirmed + timedelta(minutes=order.eta_minutes) if confirmed is not None else None


def order_event_data(order: Order, *, actor_id: uuid.UUID | None, at: datetime) -> dict[str, Any]:
    data: dict[str, Any] = {
        "order_id": str(order.id),
        "hospital_org_id": str(order.hospital_org_id),
        "vendor_id": str(order.vendor_id),
        "depot_id": str(order.depot_id),
        "status": order.status,
        "priority": order.priority,
        "payment_method": order.payment_method,
        "total": str(order.total),
        "deposit_total": str(order.deposit_total),
        "currency": order.currency,
        "items": [
            {
                "product_id": str(item.product_id),
                "quantity": item.quantity,
                "unit_price": str(item.unit_price),
                "line_total": str(item.line_total),
                "deposit_per_unit": str(item.deposit_per_unit),
            }
            for item in order.items
        ],
        "actor_id": str(actor_id) if actor_id is not None else None,
        "at": rfc3339(at),
        "site_id": str(order.site_id) if order.site_id is not None else None,
        "eta": rfc3339(eta) if (eta := order_eta(order)) is not None else None,
    }
    if order.status in (OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.FAILED):
        data["reason"] = order.reason
    if order.status == OrderStatus.CONFIRMED:
        data["eta_minutes"] = order.eta_minutes
    if order.sos_id is not None:
        data["sos_id"] = str(order.sos_id)
    return data


async def order_status_changed(
    session: AsyncSession,
    order: Order,
    *,
    actor_id: uuid.UUID | None,
    at: datetime,
) -> None:
    """`order.<status>`, with the correlation id of the request (or sweep) that caused it.

    Never with a card token: outbox rows are kept and events reach every consumer, so the
    token goes to payment-service over its internal API only (service/placement.py).
    """
    await add_event(
        session,
        outbox,
        event_type=event_type(OrderStatus(order.status)),
        producer=PRODUCER,
        data=order_event_data(order, actor_id=actor_id, at=at),
    )


# --- SOS broadcast (service/sos.py) -------------------------------------------------------


def sos_delivery(sos: SosRequest) -> dict[str, Any]:
    return {"lat": sos.delivery_lat, "lon": sos.delivery_lon, "address": sos.delivery_address}


def sos_offers_data(offers: Sequence[SosOffer]) -> list[dict[str, Any]]:
    return [
        {
            "vendor_id": str(offer.vendor_id),
            "depot_id": str(offer.depot_id),
            "distance_km": offer.distance_km,
            "eta_min": offer.eta_min,
        }
        for offer in offers
    ]


async def sos_event(session: AsyncSession, event_type: str, data: dict[str, Any]) -> None:
    """`sos.<what>`: opened, request, escalated, fulfilled, closed, unfilled, cancelled."""
    await add_event(session, outbox, event_type=event_type, producer=PRODUCER, data=data)
