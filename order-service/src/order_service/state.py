"""The order state machine as data: which moves exist and what each does to the stock hold.

    placed -> confirmed -> dispatched -> delivered
    placed -> rejected | cancelled | expired | failed
    confirmed -> cancelled            (a hospital may cancel until dispatch)
    confirmed -> failed               (its payment failed)

`apply_transition` is the only code that changes an order's status: it checks
the move, appends to `status_history`, writes the `order.<status>` event to the
outbox and, on delivered or an end state, gives the order's units back to its
hospital's allocation, all in the caller's transaction. Anything else is 409.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.metrics import business_counter
from order_service import events
from order_service.errors import IllegalTransition
from order_service.models import Order, OrderStatus, ReservationStatus
from order_service.service import allocation

SYSTEM_ACTOR = "system"

TRANSITIONS: Mapping[OrderStatus | None, frozenset[OrderStatus]] = {
    None: frozenset({OrderStatus.PLACED}),
    OrderStatus.PLACED: frozenset(
        {
            OrderStatus.CONFIRMED,
            OrderStatus.REJECTED,
            OrderStatus.CANCELLED,
            OrderStatus.EXPIRED,
            OrderStatus.FAILED,
        }
    ),
    # A card declined after the vendor confirmed still fails the order.
    OrderStatus.CONFIRMED: frozenset(
        {OrderStatus.DISPATCHED, OrderStatus.CANCELLED, OrderStatus.FAILED}
    ),
    OrderStatus.DISPATCHED: frozenset({OrderStatus.DELIVERED}),
}


class HoldEffect(StrEnum):
    RELEASE = "release"
    COMMIT = "commit"


# What entering a status does to the order's hold at inventory-service.
HOLD_EFFECTS: Mapping[OrderStatus, HoldEffect] = {
    OrderStatus.CANCELLED: HoldEffect.RELEASE,
    OrderStatus.REJECTED: HoldEffect.RELEASE,
    OrderStatus.EXPIRED: HoldEffect.RELEASE,
    OrderStatus.FAILED: HoldEffect.RELEASE,
    OrderStatus.DELIVERED: HoldEffect.COMMIT,
}

# Entering one of these ends the order's claim on its hospital's allocation: its units
# stop counting as open (service/allocation.py). Each is entered at most once per order.
CLOSES_ALLOCATION: frozenset[OrderStatus] = frozenset(HOLD_EFFECTS)

ORDER_TRANSITIONS = business_counter(
    "flow_order_transitions_total", "Order status changes, by the status entered.", ("status",)
)


def current_status(order: Order) -> OrderStatus | None:
    return OrderStatus(order.status) if order.status is not None else None


def ensure_can_move(order: Order, target: OrderStatus) -> None:
    current = current_status(order)
    if target not in TRANSITIONS.get(current, frozenset()):
        raise IllegalTransition(f"An order that is {current} cannot become {target}.")


async def apply_transition(
    session: AsyncSession,
    order: Order,
    target: OrderStatus,
    *,
    actor_id: uuid.UUID | None,
    at: datetime,
    reason: str | None = None,
) -> None:
    """Move `order` to `target` (the caller holds its row lock), with history and event.

    A COMMIT effect must already have happened at inventory-service: the caller
    commits the hold first, then records the move. A RELEASE effect is recorded
    as pending here and carried out once this transaction has committed.
    """
    ensure_can_move(order, target)
    order.status = target
    order.status_history = [
        *(order.status_history or []),
        {
            "status": target.value,
            "at": events.rfc3339(at),
            "actor": str(actor_id) if actor_id is not None else SYSTEM_ACTOR,
        },
    ]
    order.updated_at = at
    if reason is not None:
        order.reason = reason
    effect = HOLD_EFFECTS.get(target)
    if effect is HoldEffect.RELEASE:
        order.reservation_status = ReservationStatus.RELEASE_PENDING
        order.release_attempted_at = at
    elif effect is HoldEffect.COMMIT:
        order.reservation_status = ReservationStatus.COMMITTED
    if target in CLOSES_ALLOCATION:
        await allocation.give_back(session, order.hospital_org_id, allocation.order_units(order))
    await events.order_status_changed(session, order, actor_id=actor_id, at=at)
    ORDER_TRANSITIONS.labels(target.value).inc()
