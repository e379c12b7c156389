"""Auto-reorder: the order or SOS Flow places for a site whose runway crosses a threshold.

A hospital configures `auto_reorder: {product_id, quantity, priority}` on a site's
report. Then:

- a crossing to **low** places that order; a crossing to **critical** opens an SOS for
  the same product and quantity (a site that falls from ok straight to critical gets the
  SOS only: it is the faster way to oxygen, and the cap counts both);
- **never a second while one is open**, per kind: the request is a row written in the
  transaction that raises the alert, and a partial unique index allows one pending or
  open row per site and kind. An order is open until it is delivered or ends; an SOS
  until its order does, or it ends unfilled or cancelled;
- the row is sent to order-service afterwards (`AutoReorderSender`), with the row's id
  as the Idempotency-Key: a crash before the answer, a lost answer or a restart sends
  the same key again and order-service answers with the first order. A refusal (the
  allocation cap, a shortage pause, nobody in range) is final and kept, with its reason,
  for the hospital to see; a failure to reach order-service is tried again later.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.clock import Clock, utcnow
from flow_shared.db import Database
from flow_shared.errors import DomainError
from flow_shared.metrics import business_counter
from flow_shared.unit_of_work import unit_of_work
from inventory_service.clients import AutoReorderRequest, OrderClient, Refused
from inventory_service.models import (
    AutoReorder,
    AutoReorderKind,
    AutoReorderStatus,
    SiteSupply,
)

log = structlog.get_logger("inventory.auto_reorder")

AUTO_REORDERS = business_counter(
    "flow_inventory_auto_reorders_total",
    "Auto-reorders sent to order-service, by kind and outcome (placed, refused).",
    ("kind", "outcome"),
)
OPEN = (AutoReorderStatus.PENDING.value, AutoReorderStatus.OPEN.value)
FIRST_RETRY = timedelta(seconds=5)
LAST_RETRY = timedelta(minutes=10)
# A refused request stays on the runway this long, so the hospital sees why nothing came.
REFUSAL_SHOWN_FOR = timedelta(hours=24)


async def request_on_alert(
    session: AsyncSession, site: SiteSupply, alert: str, *, now: datetime
) -> None:
    """Write the site's auto-reorder for the alert just raised, unless the site has none
    configured or one of that kind is still open."""
    if site.auto_reorder_product_id is None or site.auto_reorder_quantity is None:
        return
    kind = AutoReorderKind.ORDER if alert == "low" else AutoReorderKind.SOS
    await session.execute(
        pg_insert(AutoReorder)
        .values(
            id=uuid.uuid4(),
            site_id=site.site_id,
            hospital_org_id=site.hospital_org_id,
            kind=kind.value,
            product_id=site.auto_reorder_product_id,
            quantity=site.auto_reorder_quantity,
            priority=site.auto_reorder_priority or "urgent",
            status=AutoReorderStatus.PENDING.value,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(
            index_elements=[AutoReorder.site_id, AutoReorder.kind],
            index_where=AutoReorder.status.in_(OPEN),
        )
    )


# --- what the order events say ------------------------------------------------------------


async def order_moved(
    session: AsyncSession,
    *,
    order_id: uuid.UUID,
    sos_id: uuid.UUID | None,
    ended: bool,
    now: datetime,
) -> None:
    """An order changed status: an SOS's order joins its request, and an order that was
    delivered or ended closes the request it came from."""
    if sos_id is not None:
        await session.execute(
            update(AutoReorder)
            .where(AutoReorder.sos_id == sos_id, AutoReorder.order_id.is_(None))
            .values(order_id=order_id, updated_at=now)
        )
    if ended:
        await _close(session, AutoReorder.order_id == order_id, now=now)


async def sos_ended(session: AsyncSession, sos_id: uuid.UUID, *, now: datetime) -> None:
    """An SOS ended without an order (unfilled, cancelled): its request is closed."""
    await _close(session, AutoReorder.sos_id == sos_id, now=now)


async def _close(session: AsyncSession, which: ColumnElement[bool], *, now: datetime) -> None:
    await session.execute(
        update(AutoReorder)
        .where(which, AutoReorder.status == AutoReorderStatus.OPEN.value)
        .values(status=AutoReorderStatus.CLOSED.value, updated_at=now)
    )


# --- sending them ---------------------------------------------------------------------------


class AutoReorderSender:
    """Sends pending auto-reorders to order-service, one per transaction, the row locked
    for the call (SKIP LOCKED: several processes send at once, never the same row)."""

    def __init__(self, database: Database, orders: OrderClient, *, clock: Clock = utcnow):
        self.database = database
        self.orders = orders
        self.clock = clock

    async def run_once(self) -> int:
        """Send everything due now; returns how many were answered (placed or refused)."""
        now = self.clock()
        answered = 0
        tried: set[uuid.UUID] = set()
        while True:
            async with unit_of_work(self.database) as uow:
                request = await _next_due(uow.session, now, skip=tried)
                if request is None:
                    return answered
                tried.add(request.id)
                answered += await self._send(request, now)

    async def _send(self, request: AutoReorder, now: datetime) -> int:
        kind = AutoReorderKind(request.kind)
        order = AutoReorderRequest(
            hospital_org_id=request.hospital_org_id,
            site_id=request.site_id,
            product_id=request.product_id,
            quantity=request.quantity,
            note=f"Auto-reorder {request.id}",
        )
        key = f"auto-reorder-{request.id}"
        try:
            if kind is AutoReorderKind.ORDER:
                request.order_id = await self.orders.place_order(
                    order, priority=request.priority, idempotency_key=key
                )
            else:
                request.sos_id = await self.orders.open_sos(order, idempotency_key=key)
        except Refused as refusal:
            request.status = AutoReorderStatus.REFUSED.value
            request.reason = refusal.reason[:500]
            log.warning("auto_reorder_refused", request_id=str(request.id), reason=refusal.reason)
            AUTO_REORDERS.labels(kind=kind.value, outcome="refused").inc()
        except DomainError as failure:  # order-service down or its answer unreadable
            request.attempts += 1
            request.reason = str(failure)[:500]
            request.next_attempt_at = now + min(
                FIRST_RETRY * 2 ** (request.attempts - 1), LAST_RETRY
            )
            log.warning("auto_reorder_deferred", request_id=str(request.id), error=str(failure))
            return 0
        else:
            request.status = AutoReorderStatus.OPEN.value
            request.reason = None
            AUTO_REORDERS.labels(kind=kind.value, outcome="placed").inc()
        request.updated_at = now
        return 1


async def _next_due(
    session: AsyncSession, now: datetime, *, skip: set[uuid.UUID]
) -> AutoReorder | None:
    statement = (
        select(AutoReorder)
        .where(
            AutoReorder.status == AutoReorderStatus.PENDING.value,
            AutoReorder.next_attempt_at <= now,
        )
        .order_by(AutoReorder.next_attempt_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if skip:  # one try per run: a deferred one waits for its next attempt
        statement = statement.where(AutoReorder.id.not_in(skip))
    request: AutoReorder | None = await session.scalar(statement)
    return request


# --- reading --------------------------------------------------------------------------------


async def shown(
    session: AsyncSession, site_ids: Sequence[uuid.UUID], *, now: datetime
) -> dict[uuid.UUID, list[AutoReorder]]:
    """The sites' auto-reorders on their way (pending, open) and those refused lately."""
    if not site_ids:
        return {}
    rows = await session.scalars(
        select(AutoReorder)
        .where(
            AutoReorder.site_id.in_(site_ids),
            or_(
                AutoReorder.status.in_(OPEN),
                (AutoReorder.status == AutoReorderStatus.REFUSED.value)
                & (AutoReorder.updated_at > now - REFUSAL_SHOWN_FOR),
            ),
        )
        .order_by(AutoReorder.created_at)
    )
    by_site: dict[uuid.UUID, list[AutoReorder]] = {}
    for row in rows:
        by_site.setdefault(row.site_id, []).append(row)
    return by_site
