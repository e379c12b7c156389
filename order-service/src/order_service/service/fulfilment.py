"""The moves of a placed order: the hospital cancels; the vendor confirms, rejects,
dispatches and delivers. Each locks the order row (SELECT ... FOR UPDATE) so two
moves on one order never interleave.

Stock holds and the order of operations:
- cancel/reject record the new status and a pending release in one transaction;
  the release happens after that commits. Releasing first could leave a live
  order without a hold if the commit then failed; this way the worst case is a
  hold kept a little longer (the sweeper retries the release), never an oversell.
- confirm extends the hold at inventory-service (to CONFIRMED_HOLD_SECONDS) before
  recording `confirmed`: the placement hold only outlives the confirm window by a
  few minutes. A hold that is gone refuses the confirmation (409 hold-lost) and the
  order stays placed until the sweeper expires it. If recording then fails, the
  order stays placed with a longer hold; its expiry releases that hold as usual.
- deliver commits the hold at inventory-service first, then records `delivered`.
  If recording fails the order stays `dispatched` and the vendor's retry finds
  the hold already committed (commit is idempotent).

Cylinders (serial-tracked at inventory-service's ledger):
- dispatch names the serials of the order's cylinder lines. They are sent to
  inventory-service (POST /internal/cylinders/dispatch) under the row lock, after the
  move is known legal and before `dispatched` is recorded; an order that took deposits
  must name them (409 cylinders-required). A refusal (409 cylinders-refused, with the
  offending serials) or inventory being down (503) leaves the order as it was.
- deliver, for an order whose cylinders are tracked or that names returned empties,
  tells inventory-service (POST /internal/cylinders/deliver) next to the hold commit,
  before `delivered` is recorded.
- Both calls are idempotent per order at inventory-service: if recording then fails,
  or the answer is lost, the vendor's retry converges on the same state (a repeated
  dispatch with other serials sends the dropped ones back to `full`; a repeated
  delivery moves and credits nothing twice).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Literal

import structlog
from sqlalchemy import select

from flow_shared.auth import Principal
from flow_shared.clock import utcnow
from flow_shared.unit_of_work import UnitOfWork
from order_service.clients import CylinderMove, InventoryClient, LineDeposit, StockLine
from order_service.errors import CylindersRequired, HoldLost, OrderExpired, OrderNotFound
from order_service.models import Order, OrderStatus, ReservationStatus
from order_service.service.holds import release_after_commit
from order_service.state import apply_transition, ensure_can_move

Side = Literal["hospital", "vendor"]

log = structlog.get_logger("order_service.fulfilment")


async def lock_order(
    uow: UnitOfWork, principal: Principal, order_id: uuid.UUID, side: Side
) -> Order:
    """The order, row-locked, if it is this hospital's (or this vendor's); else 404."""
    owner = Order.hospital_org_id if side == "hospital" else Order.vendor_id
    order = await uow.session.scalar(
        select(Order).where(Order.id == order_id, owner == principal.org_id).with_for_update()
    )
    if order is None:
        raise OrderNotFound("No order with this id is visible to you.")
    return order


async def cancel(
    uow: UnitOfWork,
    inventory: InventoryClient,
    hospital: Principal,
    order_id: uuid.UUID,
    *,
    reason: str | None,
) -> Order:
    order = await lock_order(uow, hospital, order_id, "hospital")
    await apply_transition(
        uow.session,
        order,
        OrderStatus.CANCELLED,
        actor_id=hospital.user_id,
        at=utcnow(),
        reason=reason,
    )
    release_after_commit(uow, inventory, order, cause="cancelled")
    return order


async def confirm(
    uow: UnitOfWork,
    inventory: InventoryClient,
    vendor: Principal,
    order_id: uuid.UUID,
    *,
    eta_minutes: int | None,
    hold_seconds: int,
) -> Order:
    order = await lock_order(uow, vendor, order_id, "vendor")
    now = utcnow()
    ensure_can_move(order, OrderStatus.CONFIRMED)
    if order.expires_at <= now:
        # The sweeper has not got to it yet; the hospital was promised it would expire.
        raise OrderExpired("This order was not confirmed in time and has expired.")
    try:
        hold = await inventory.extend(order.reservation_id, ttl_seconds=hold_seconds)
    except HoldLost:
        log.warning(
            "confirm_refused_hold_lost",
            order_id=str(order.id),
            reservation_id=str(order.reservation_id),
        )
        raise
    log.info(
        "hold_extended_on_confirm",
        order_id=str(order.id),
        reservation_id=str(order.reservation_id),
        hold_expires_at=hold.expires_at.isoformat() if hold.expires_at else None,
    )
    order.eta_minutes = eta_minutes
    await apply_transition(
        uow.session, order, OrderStatus.CONFIRMED, actor_id=vendor.user_id, at=now
    )
    return order


async def reject(
    uow: UnitOfWork,
    inventory: InventoryClient,
    vendor: Principal,
    order_id: uuid.UUID,
    *,
    reason: str,
) -> Order:
    order = await lock_order(uow, vendor, order_id, "vendor")
    await apply_transition(
        uow.session,
        order,
        OrderStatus.REJECTED,
        actor_id=vendor.user_id,
        at=utcnow(),
        reason=reason,
    )
    release_after_commit(uow, inventory, order, cause="rejected")
    return order


def _cylinder_move(order: Order, actor: Principal) -> CylinderMove:
    return CylinderMove(
        order_id=order.id,
        vendor_id=order.vendor_id,
        depot_id=order.depot_id,
        hospital_org_id=order.hospital_org_id,
        actor_id=actor.user_id,
    )


async def dispatch(
    uow: UnitOfWork,
    inventory: InventoryClient,
    vendor: Principal,
    order_id: uuid.UUID,
    *,
    cylinders: Sequence[str] | None,
) -> Order:
    order = await lock_order(uow, vendor, order_id, "vendor")
    # Refuse an illegal move before touching the cylinders.
    ensure_can_move(order, OrderStatus.DISPATCHED)
    if cylinders is None and order.deposit_total > Decimal(0):
        raise CylindersRequired(
            "This order took cylinder deposits: name the serials of its cylinders "
            "(`cylinders`) to dispatch it."
        )
    if cylinders is not None:
        lines = [StockLine(product_id=i.product_id, quantity=i.quantity) for i in order.items]
        sent = await inventory.dispatch_cylinders(
            _cylinder_move(order, vendor), lines=lines, serials=cylinders
        )
        order.cylinders_tracked = True
        log.info("cylinders_dispatched", order_id=str(order.id), count=len(sent.cylinders))
    await apply_transition(
        uow.session, order, OrderStatus.DISPATCHED, actor_id=vendor.user_id, at=utcnow()
    )
    return order


async def deliver(
    uow: UnitOfWork,
    inventory: InventoryClient,
    vendor: Principal,
    order_id: uuid.UUID,
    *,
    returned_cylinders: Sequence[str] | None = None,
) -> Order:
    order = await lock_order(uow, vendor, order_id, "vendor")
    # Refuse an illegal move before touching the stock.
    ensure_can_move(order, OrderStatus.DELIVERED)
    if order.reservation_status != ReservationStatus.COMMITTED:
        await inventory.commit(order.reservation_id)
    if order.cylinders_tracked or returned_cylinders:
        moved = await inventory.deliver_cylinders(
            _cylinder_move(order, vendor),
            returned=returned_cylinders or [],
            deposits=_deposits(order),
        )
        log.info(
            "cylinders_delivered",
            order_id=str(order.id),
            delivered=len(moved.delivered),
            returned=len(moved.returned),
        )
    await apply_transition(
        uow.session, order, OrderStatus.DELIVERED, actor_id=vendor.user_id, at=utcnow()
    )
    return order


def _deposits(order: Order) -> list[LineDeposit]:
    """Each product's deposit per unit, as the order was charged it (one per product)."""
    by_product: dict[uuid.UUID, LineDeposit] = {}
    for item in order.items:
        by_product.setdefault(
            item.product_id,
            LineDeposit(
                product_id=item.product_id,
                deposit_per_unit=item.deposit_per_unit,
                currency=order.currency,
            ),
        )
    return list(by_product.values())
