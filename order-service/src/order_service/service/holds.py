"""Giving stock holds back at inventory-service, and remembering when that could not be done.

Releases are idempotent at inventory-service, so retrying is always safe.
- An order that left the flow is marked `release_pending` in the same
  transaction as its new status; the release is attempted right after the
  commit, and the order sweeper retries those still pending.
- A hold taken by a placement that then failed, and that could not be
  released on the spot, is remembered as an `AbandonedHold` once the
  placement's transaction has ended; the sweeper releases it later.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

import anyio
import structlog
from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert

from flow_shared.clock import utcnow
from flow_shared.db import Database
from flow_shared.metrics import business_counter
from flow_shared.unit_of_work import UnitOfWork, unit_of_work
from order_service.clients import InventoryClient, ReleaseOutcome, StockLine
from order_service.models import AbandonedHold, Order, ReservationStatus

HOLD_RELEASES = business_counter(
    "flow_order_hold_releases_total",
    "Releases of stock holds asked of inventory-service, by why and how they ended.",
    ("cause", "outcome"),
)

log = structlog.get_logger("order_service.holds")


async def release_hold(
    inventory: InventoryClient, reservation_id: uuid.UUID, *, cause: str
) -> ReleaseOutcome | None:
    """Best effort: the outcome, or None when inventory-service could not be reached."""
    try:
        # Shielded: a cancelled request must still give back what it took.
        with anyio.CancelScope(shield=True):
            outcome = await inventory.release(reservation_id)
    except Exception as exc:
        HOLD_RELEASES.labels(cause, "failed").inc()
        log.warning(
            "hold_release_failed",
            reservation_id=str(reservation_id),
            cause=cause,
            error=type(exc).__name__,
        )
        return None
    HOLD_RELEASES.labels(cause, outcome.value).inc()
    if outcome is ReleaseOutcome.COMMITTED:
        log.error("hold_release_refused_committed", reservation_id=str(reservation_id))
    return outcome


async def release_and_record(
    database: Database,
    inventory: InventoryClient,
    order_id: uuid.UUID,
    reservation_id: uuid.UUID,
    *,
    cause: str,
) -> bool:
    """Release an order's hold and record that it is done; False leaves it pending."""
    outcome = await release_hold(inventory, reservation_id, cause=cause)
    if outcome is None:
        return False
    final = (
        ReservationStatus.COMMITTED
        if outcome is ReleaseOutcome.COMMITTED
        else ReservationStatus.RELEASED
    )
    async with unit_of_work(database) as uow:
        await uow.session.execute(
            update(Order)
            .where(
                Order.id == order_id,
                Order.reservation_status == ReservationStatus.RELEASE_PENDING,
            )
            .values(reservation_status=final)
            .execution_options(synchronize_session=False)
        )
    return True


def release_after_commit(
    uow: UnitOfWork, inventory: InventoryClient, order: Order, *, cause: str
) -> None:
    """Release `order`'s hold once the transaction that ended its flow has committed."""
    order_id, reservation_id = order.id, order.reservation_id

    async def release() -> None:
        await release_and_record(uow.database, inventory, order_id, reservation_id, cause=cause)

    uow.after_commit(release)


def reserve_request(
    depot_id: uuid.UUID, items: Sequence[StockLine], ttl_seconds: int, priority: str
) -> dict[str, object]:
    """What was sent to reserve, kept so the hold can be found again by its order id."""
    return {
        "depot_id": str(depot_id),
        "items": [{"product_id": str(i.product_id), "quantity": i.quantity} for i in items],
        "ttl_seconds": ttl_seconds,
        "priority": priority,
    }


async def remember_abandoned_hold(
    database: Database,
    *,
    order_id: uuid.UUID,
    reservation_id: uuid.UUID | None,
    request: dict[str, object],
    ttl_seconds: int,
) -> None:
    """Record a hold a failed placement left behind (outside that placement's transaction)."""
    now = utcnow()
    statement = insert(AbandonedHold).values(
        order_id=order_id,
        reservation_id=reservation_id,
        reserve_request=request,
        hold_expires_at=now + timedelta(seconds=ttl_seconds),
        created_at=now,
        attempted_at=now,
    )
    statement = statement.on_conflict_do_update(
        index_elements=[AbandonedHold.order_id],
        set_={
            "reservation_id": func.coalesce(
                statement.excluded.reservation_id, AbandonedHold.reservation_id
            )
        },
    )
    try:
        async with unit_of_work(database) as uow:
            await uow.session.execute(statement)
    except Exception:
        # Nothing more can be done here: the hold's own TTL will free the stock.
        log.exception("abandoned_hold_not_recorded", order_id=str(order_id))
        return
    log.warning(
        "hold_abandoned",
        order_id=str(order_id),
        reservation_id=str(reservation_id) if reservation_id else None,
    )


def give_back_later(
    uow: UnitOfWork,
    *,
    order_id: uuid.UUID,
    reservation_id: uuid.UUID | None,
    request: dict[str, object],
    ttl_seconds: int,
) -> None:
    """Remember an abandoned hold once the current transaction has ended."""

    async def remember() -> None:
        await remember_abandoned_hold(
            uow.database,
            order_id=order_id,
            reservation_id=reservation_id,
            request=request,
            ttl_seconds=ttl_seconds,
        )

    uow.after_transaction(remember)
