"""The order sweeper: unconfirmed orders past their deadline expire and their stock returns.

Runs in every order-service process (a PeriodicTask); `FOR UPDATE SKIP LOCKED`
lets several run at once without taking the same order, and an order a
vendor is confirming right now (row locked) is simply looked at next time.
It also retries releases that failed earlier (inventory-service was down):
those of orders that left the flow, and holds abandoned by failed placements.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import delete, or_, select, update

from flow_shared.clock import Clock, utcnow
from flow_shared.correlation import new_correlation_id, set_correlation_id
from flow_shared.db import Database
from flow_shared.errors import DomainError
from flow_shared.unit_of_work import unit_of_work
from order_service.clients import InventoryClient, StockLine
from order_service.config import Settings
from order_service.models import AbandonedHold, Order, OrderStatus, ReservationStatus
from order_service.service.holds import (
    release_after_commit,
    release_and_record,
    release_hold,
)
from order_service.state import apply_transition

# Bounds one run, so a huge backlog cannot keep a run (and shutdown) going for long.
MAX_BATCHES_PER_RUN = 10

log = structlog.get_logger("order_service.expiry")


@dataclass(frozen=True, slots=True)
class SweepResult:
    expired: int
    releases_retried: int
    abandoned_holds_retried: int


class OrderSweeper:
    def __init__(
        self,
        database: Database,
        inventory: InventoryClient,
        settings: Settings,
        *,
        clock: Clock = utcnow,
    ) -> None:
        self.database = database
        self.inventory = inventory
        # What "overdue" is measured against (tests move it).
        self.clock = clock
        self.batch_size = settings.order_sweep_batch_size
        self.retry_after = timedelta(seconds=settings.release_retry_after_seconds)

    async def run_once(self) -> SweepResult:
        # Events and calls of this run share one correlation id, as a request's do.
        set_correlation_id(new_correlation_id())
        result = SweepResult(
            expired=await self._batches(self.expire_overdue),
            releases_retried=await self._batches(self.retry_pending_releases),
            abandoned_holds_retried=await self._batches(self.retry_abandoned_holds),
        )
        if any((result.expired, result.releases_retried, result.abandoned_holds_retried)):
            log.info(
                "order_sweep",
                expired=result.expired,
                releases_retried=result.releases_retried,
                abandoned_holds_retried=result.abandoned_holds_retried,
            )
        return result

    async def _batches(self, run_batch: Callable[[], Awaitable[int]]) -> int:
        total = 0
        for _ in range(MAX_BATCHES_PER_RUN):
            count = await run_batch()
            total += count
            if count < self.batch_size:
                break
        return total

    async def expire_overdue(self) -> int:
        """One batch: placed orders past `expires_at` become expired; their holds go back."""
        async with unit_of_work(self.database) as uow:
            now = self.clock()
            overdue = (
                await uow.session.scalars(
                    select(Order)
                    .where(Order.status == OrderStatus.PLACED, Order.expires_at <= now)
                    .order_by(Order.expires_at)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for order in overdue:
                await apply_transition(
                    uow.session, order, OrderStatus.EXPIRED, actor_id=None, at=now
                )
                release_after_commit(uow, self.inventory, order, cause="expired")
        return len(overdue)

    async def retry_pending_releases(self) -> int:
        """One batch of releases that failed before; each is leased so one process tries it."""
        async with unit_of_work(self.database) as uow:
            now = self.clock()
            due = (
                select(Order.id)
                .where(
                    Order.reservation_status == ReservationStatus.RELEASE_PENDING,
                    or_(
                        Order.release_attempted_at.is_(None),
                        Order.release_attempted_at <= now - self.retry_after,
                    ),
                )
                .order_by(Order.release_attempted_at)
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            )
            leased = (
                await uow.session.execute(
                    update(Order)
                    .where(Order.id.in_(due))
                    .values(release_attempted_at=now)
                    .returning(Order.id, Order.reservation_id)
                    .execution_options(synchronize_session=False)
                )
            ).all()
        for order_id, reservation_id in leased:
            await release_and_record(
                self.database, self.inventory, order_id, reservation_id, cause="retry"
            )
        return len(leased)

    async def retry_abandoned_holds(self) -> int:
        """One batch of holds failed placements left behind; released, then forgotten."""
        async with unit_of_work(self.database) as uow:
            now = self.clock()
            due = (
                select(AbandonedHold.order_id)
                .where(AbandonedHold.attempted_at <= now - self.retry_after)
                .order_by(AbandonedHold.attempted_at)
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            )
            leased = (
                await uow.session.scalars(
                    update(AbandonedHold)
                    .where(AbandonedHold.order_id.in_(due))
                    .values(attempted_at=now, attempts=AbandonedHold.attempts + 1)
                    .returning(AbandonedHold)
                    .execution_options(synchronize_session=False)
                )
            ).all()
        for hold in leased:
            if hold.hold_expires_at <= self.clock() or await self._give_back(hold):
                async with unit_of_work(self.database) as uow:
                    await uow.session.execute(
                        delete(AbandonedHold).where(AbandonedHold.order_id == hold.order_id)
                    )
        return len(leased)

    async def _give_back(self, hold: AbandonedHold) -> bool:
        """True once nothing is held for the abandoned order any more."""
        reservation_id = hold.reservation_id
        if reservation_id is None:
            request = hold.reserve_request
            try:
                # Idempotent on order_id: this finds the hold (or takes one, released below).
                found = await self.inventory.reserve(
                    order_id=hold.order_id,
                    depot_id=uuid.UUID(str(request["depot_id"])),
                    items=[StockLine.model_validate(line) for line in request["items"]],
                    ttl_seconds=int(request["ttl_seconds"]),
                    # Rows written before priorities were sent: any priority finds the hold.
                    priority=str(request.get("priority", "emergency")),
                )
            except DomainError as exc:
                # A refusal (short stock, unknown depot) means there is no hold to give back.
                return exc.status < 500
            reservation_id = found.reservation_id
        return await release_hold(self.inventory, reservation_id, cause="abandoned") is not None
