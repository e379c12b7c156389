"""Reservations: holds on stock for an order, committed on delivery, released on
cancellation, expired by the sweeper.

Never oversold, whatever the concurrency: a hold is an atomic conditional UPDATE
(`... WHERE on_hand - reserved >= q`), backed by the CHECK on the stock table. A
routine hold's condition also keeps the emergency reserve (EMERGENCY_RESERVE_PCT of
on_hand) available: `floor(on_hand * (100 - pct) / 100) - reserved >= q`.
Rows are locked in one global order, (depot_id, product_id), by every writer,
so two reservations for [A, B] and [B, A] cannot deadlock. A reservation row is
locked before its stock rows, and the sweeper skips reservation rows others hold.
A live hold can be extended (a confirmed order waiting for delivery); that moves
only its expiry, never stock.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.errors import UnprocessableEntity
from inventory_service import events
from inventory_service.errors import (
    DepotNotFound,
    InsufficientStock,
    ProductNotFound,
    ReservationCommitted,
    ReservationMismatch,
    ReservationNotFound,
    ReservationNotHeld,
    ShortItem,
    VendorUnavailable,
)
from inventory_service.models import (
    Depot,
    MovementKind,
    Product,
    Reservation,
    ReservationItem,
    ReservationStatus,
    Stock,
    Vendor,
)
from inventory_service.schemas import ReservationCreate, ReservationLine
from inventory_service.service.stock import STOCK_COLUMNS, StockState, record_stock_change

SWEEPER_ACTOR = "reservation-sweeper"

log = structlog.get_logger("inventory.reservations")


@dataclass(frozen=True, slots=True)
class ReservationView:
    id: uuid.UUID
    order_id: uuid.UUID
    depot_id: uuid.UUID
    vendor_id: uuid.UUID
    status: ReservationStatus
    expires_at: datetime
    # product_id -> quantity, ascending product_id
    items: dict[uuid.UUID, int]


def sum_lines(lines: Iterable[ReservationLine]) -> dict[uuid.UUID, int]:
    """Lines of one product count together: [A:3, A:3] against 5 in stock is short."""
    totals: dict[uuid.UUID, int] = defaultdict(int)
    for line in lines:
        totals[line.product_id] += line.quantity
    return dict(sorted(totals.items()))


async def _view(session: AsyncSession, reservation: Reservation) -> ReservationView:
    items = (
        await session.execute(
            select(ReservationItem.product_id, ReservationItem.quantity)
            .where(ReservationItem.reservation_id == reservation.id)
            .order_by(ReservationItem.product_id)
        )
    ).all()
    return ReservationView(
        id=reservation.id,
        order_id=reservation.order_id,
        depot_id=reservation.depot_id,
        vendor_id=reservation.vendor_id,
        status=ReservationStatus(reservation.status),
        expires_at=reservation.expires_at,
        items={row.product_id: row.quantity for row in items},
    )


async def _replay(
    session: AsyncSession, order_id: uuid.UUID, depot_id: uuid.UUID, wanted: Mapping[uuid.UUID, int]
) -> ReservationView | None:
    reservation = await session.scalar(
        select(Reservation)
        .where(Reservation.order_id == order_id)
        .execution_options(populate_existing=True)
    )
    if reservation is None:
        return None
    view = await _view(session, reservation)
    if view.depot_id != depot_id or view.items != dict(wanted):
        raise ReservationMismatch(
            f"Order {order_id} already holds reservation {view.id} with other items."
        )
    return view


def reservable(pct_kept: int) -> Any:
    """How many units of a stock row a hold may take, for a hold that must leave
    `pct_kept` percent of on_hand (rounded up) available; 0 for urgent and emergency."""
    if pct_kept == 0:
        return Stock.on_hand - Stock.reserved
    # Integer arithmetic: the floor of on_hand's (100 - pct)%, less what is held already.
    return (Stock.on_hand * (100 - pct_kept)) // 100 - Stock.reserved


async def reserve(
    session: AsyncSession,
    body: ReservationCreate,
    *,
    actor: str,
    max_ttl_seconds: int,
    emergency_reserve_pct: int = 0,
) -> tuple[ReservationView, bool]:
    """Hold the items for the order. Returns (reservation, created); a replay of the same
    order returns the first reservation, whatever its status now.

    A routine hold may not take a product's available stock below `emergency_reserve_pct`
    of its on_hand: the floor is in the same conditional UPDATE that holds, so concurrent
    routine holds can never dip into it. Its short items say what it could have taken."""
    if body.ttl_seconds > max_ttl_seconds:
        raise UnprocessableEntity(f"ttl_seconds may be at most {max_ttl_seconds}.")
    wanted = sum_lines(body.items)
    replay = await _replay(session, body.order_id, body.depot_id, wanted)
    if replay is not None:
        return replay, False

    vendor_id = await _available_depot_vendor(session, body.depot_id)
    skus = await _product_skus(session, wanted)

    # The reservation row first: UNIQUE(order_id) makes a concurrent duplicate wait here
    # for the first one's outcome before either touches stock.
    reservation_id = uuid.uuid4()
    expires_at = await _insert_reservation(session, reservation_id, body, vendor_id)
    if expires_at is None:
        replay = await _replay(session, body.order_id, body.depot_id, wanted)
        if replay is None:  # DO NOTHING means a committed row holds this order_id
            raise ReservationMismatch("A concurrent reservation for this order vanished.")
        return replay, False

    pct_kept = emergency_reserve_pct if body.priority == "routine" else 0
    held = await _hold_stock(session, body.depot_id, wanted, pct_kept)
    await _record_items(
        session, reservation_id, wanted, held, vendor_id=vendor_id, skus=skus, actor=actor
    )
    view = ReservationView(
        id=reservation_id,
        order_id=body.order_id,
        depot_id=body.depot_id,
        vendor_id=vendor_id,
        status=ReservationStatus.HELD,
        expires_at=expires_at,
        items=wanted,
    )
    return view, True


async def _available_depot_vendor(session: AsyncSession, depot_id: uuid.UUID) -> uuid.UUID:
    """The depot's vendor, which must be verified and not suspended to take a hold."""
    depot = (
        await session.execute(
            select(Depot.id, Depot.vendor_id, Vendor.verified, Vendor.suspended)
            .outerjoin(Vendor, Vendor.vendor_id == Depot.vendor_id)
            .where(Depot.id == depot_id)
        )
    ).one_or_none()
    if depot is None:
        raise DepotNotFound()
    if not depot.verified or depot.suspended:
        raise VendorUnavailable("This depot's vendor is not verified or is suspended.")
    vendor_id: uuid.UUID = depot.vendor_id
    return vendor_id


async def _product_skus(
    session: AsyncSession, wanted: Mapping[uuid.UUID, int]
) -> dict[uuid.UUID, str]:
    """product_id -> sku of every wanted product; an unknown one is refused."""
    products = await session.execute(
        select(Product.id, Product.sku).where(Product.id.in_(list(wanted)))
    )
    skus = {row.id: row.sku for row in products}
    unknown = [str(pid) for pid in wanted if pid not in skus]
    if unknown:
        raise ProductNotFound(f"Unknown products: {', '.join(unknown)}.")
    return skus


async def _insert_reservation(
    session: AsyncSession,
    reservation_id: uuid.UUID,
    body: ReservationCreate,
    vendor_id: uuid.UUID,
) -> datetime | None:
    """The held reservation row; its expiry, or None when a row for the order exists."""
    inserted = (
        await session.execute(
            pg_insert(Reservation)
            .values(
                id=reservation_id,
                order_id=body.order_id,
                depot_id=body.depot_id,
                vendor_id=vendor_id,
                status=ReservationStatus.HELD.value,
                expires_at=func.now() + timedelta(seconds=body.ttl_seconds),
            )
            .on_conflict_do_nothing(index_elements=[Reservation.order_id])
            .returning(Reservation.expires_at)
        )
    ).one_or_none()
    return inserted.expires_at if inserted is not None else None


async def _hold_stock(
    session: AsyncSession,
    depot_id: uuid.UUID,
    wanted: Mapping[uuid.UUID, int],
    pct_kept: int,
) -> list[tuple[StockState, int]]:
    """Hold each product by one conditional UPDATE: every stock row after its hold, with the
    quantity held. Short of any product, InsufficientStock names every short one."""
    held: list[tuple[StockState, int]] = []
    short: list[ShortItem] = []
    may_take = reservable(pct_kept)
    for product_id, quantity in wanted.items():  # ascending product_id: the lock order
        returned = (
            await session.execute(
                update(Stock)
                .where(
                    Stock.depot_id == depot_id,
                    Stock.product_id == product_id,
                    may_take >= quantity,
                )
                .values(reserved=Stock.reserved + quantity, updated_at=func.clock_timestamp())
                .returning(*STOCK_COLUMNS)
            )
        ).one_or_none()
        if returned is None:
            available = await session.scalar(
                select(may_take).where(Stock.depot_id == depot_id, Stock.product_id == product_id)
            )
            short.append(ShortItem(product_id, quantity, max(available or 0, 0)))
        else:
            held.append((StockState.of(returned), quantity))
    if short:
        # The caller's transaction rolls back: the holds above and the row go with it.
        raise InsufficientStock(short)
    return held


async def _record_items(
    session: AsyncSession,
    reservation_id: uuid.UUID,
    wanted: Mapping[uuid.UUID, int],
    held: list[tuple[StockState, int]],
    *,
    vendor_id: uuid.UUID,
    skus: Mapping[uuid.UUID, str],
    actor: str,
) -> None:
    """The reservation's item rows, and a RESERVE movement for each stock row held."""
    await session.execute(
        pg_insert(ReservationItem),
        [
            {"reservation_id": reservation_id, "product_id": pid, "quantity": q}
            for pid, q in wanted.items()
        ],
    )
    for row, quantity in held:
        await record_stock_change(
            session,
            row,
            vendor_id=vendor_id,
            sku=skus[row.product_id],
            kind=MovementKind.RESERVE,
            delta=quantity,
            reference=str(reservation_id),
            actor=actor,
        )


async def get_reservation(session: AsyncSession, reservation_id: uuid.UUID) -> ReservationView:
    reservation = await session.get(Reservation, reservation_id)
    if reservation is None:
        raise ReservationNotFound()
    return await _view(session, reservation)


async def _lock_reservation(
    session: AsyncSession, reservation_id: uuid.UUID
) -> tuple[Reservation, bool]:
    """The reservation, locked, and whether its hold is still live by the database clock."""
    row = (
        await session.execute(
            select(Reservation, (Reservation.expires_at > func.now()).label("live"))
            .where(Reservation.id == reservation_id)
            .with_for_update(of=Reservation)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if row is None:
        raise ReservationNotFound()
    return row[0], bool(row[1])


async def _apply_to_stock(
    session: AsyncSession,
    reservation: Reservation,
    *,
    kind: MovementKind,
    actor: str,
) -> None:
    """Give back (release, expire) or take off (commit) the reservation's goods,
    stock rows in ascending product order."""
    items = (
        await session.execute(
            select(ReservationItem.product_id, ReservationItem.quantity, Product.sku)
            .join(Product, Product.id == ReservationItem.product_id)
            .where(ReservationItem.reservation_id == reservation.id)
            .order_by(ReservationItem.product_id)
        )
    ).all()
    for item in items:
        await _move_reserved(
            session,
            reservation,
            product_id=item.product_id,
            sku=item.sku,
            quantity=item.quantity,
            kind=kind,
            actor=actor,
        )


async def _move_reserved(
    session: AsyncSession,
    reservation: Reservation,
    *,
    product_id: uuid.UUID,
    sku: str,
    quantity: int,
    kind: MovementKind,
    actor: str,
) -> None:
    values: dict[str, Any] = {"reserved": Stock.reserved - quantity}
    if kind is MovementKind.COMMIT:
        values["on_hand"] = Stock.on_hand - quantity
    returned = (
        await session.execute(
            update(Stock)
            .where(Stock.depot_id == reservation.depot_id, Stock.product_id == product_id)
            .values(**values, updated_at=func.clock_timestamp())
            .returning(*STOCK_COLUMNS)
        )
    ).one()
    await record_stock_change(
        session,
        StockState.of(returned),
        vendor_id=reservation.vendor_id,
        sku=sku,
        kind=kind,
        delta=-quantity,
        reference=str(reservation.id),
        actor=actor,
    )


async def _set_status(
    session: AsyncSession, reservation: Reservation, status: ReservationStatus
) -> None:
    await session.execute(
        update(Reservation)
        .where(Reservation.id == reservation.id)
        .values(status=status.value, updated_at=func.now())
    )
    reservation.status = status.value


async def commit_reservation(
    session: AsyncSession, reservation_id: uuid.UUID, *, actor: str
) -> ReservationStatus:
    """Take the goods off on_hand (delivery). Idempotent; an expired hold cannot be
    committed even before the sweeper has released it."""
    reservation, live = await _lock_reservation(session, reservation_id)
    if reservation.status == ReservationStatus.COMMITTED:
        return ReservationStatus.COMMITTED
    if reservation.status != ReservationStatus.HELD or not live:
        state = reservation.status if reservation.status != ReservationStatus.HELD else "expired"
        raise ReservationNotHeld(f"The reservation is {state}; its stock is not held any more.")
    await _apply_to_stock(session, reservation, kind=MovementKind.COMMIT, actor=actor)
    await _set_status(session, reservation, ReservationStatus.COMMITTED)
    return ReservationStatus.COMMITTED


async def release_reservation(
    session: AsyncSession, reservation_id: uuid.UUID, *, actor: str
) -> ReservationStatus:
    """Give the goods back (cancellation, failed saga). Idempotent: a released or expired
    reservation stays as it is (its stock is back already)."""
    reservation, _live = await _lock_reservation(session, reservation_id)
    status = ReservationStatus(reservation.status)
    if status in (ReservationStatus.RELEASED, ReservationStatus.EXPIRED):
        return status
    if status == ReservationStatus.COMMITTED:
        raise ReservationCommitted("The goods of a committed reservation have left the depot.")
    await _apply_to_stock(session, reservation, kind=MovementKind.RELEASE, actor=actor)
    await _set_status(session, reservation, ReservationStatus.RELEASED)
    return ReservationStatus.RELEASED


async def extend_reservation(
    session: AsyncSession,
    reservation_id: uuid.UUID,
    *,
    ttl_seconds: int,
    max_ttl_seconds: int,
    actor: str,
) -> ReservationView:
    """Keep a live hold until at least now + ttl (an existing later expiry stays).

    One conditional UPDATE, so it cannot revive a hold that has expired, even one the
    sweeper has not released yet. Racing the sweeper is safe either way round: if the
    sweeper locked the row first, this waits and then finds it no longer held; if this
    got the row first, the sweeper skips it (SKIP LOCKED) and, once this has committed,
    its re-checked `expires_at <= now()` no longer matches.
    """
    if ttl_seconds > max_ttl_seconds:
        raise UnprocessableEntity(f"ttl_seconds may be at most {max_ttl_seconds}.")
    extended = (
        await session.scalars(
            update(Reservation)
            .where(
                Reservation.id == reservation_id,
                Reservation.status == ReservationStatus.HELD.value,
                Reservation.expires_at > func.now(),
            )
            .values(
                expires_at=func.greatest(
                    Reservation.expires_at, func.now() + timedelta(seconds=ttl_seconds)
                ),
                updated_at=func.now(),
            )
            .returning(Reservation)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if extended is None:
        reservation = await session.get(Reservation, reservation_id)
        if reservation is None:
            raise ReservationNotFound()
        state = reservation.status if reservation.status != ReservationStatus.HELD else "expired"
        raise ReservationNotHeld(f"The reservation is {state}; it cannot be extended.")
    # No stock moves, so no movement row; the log is the record of who kept it longer.
    log.info(
        "reservation_extended",
        reservation_id=str(extended.id),
        order_id=str(extended.order_id),
        ttl_seconds=ttl_seconds,
        expires_at=extended.expires_at.isoformat(),
        actor=actor,
    )
    return await _view(session, extended)


async def expire_due_reservations(session: AsyncSession, *, batch_size: int) -> int:
    """One batch of the sweeper: release holds whose time is up. Safe with many sweepers
    at once: each takes the rows nobody else holds (SKIP LOCKED). A row that changed
    since the scan's snapshot is locked only if the WHERE still matches its newest
    version (PostgreSQL re-checks it under the lock), so a hold extended meanwhile stays."""
    due = list(
        (
            await session.scalars(
                select(Reservation)
                .where(
                    Reservation.status == ReservationStatus.HELD.value,
                    Reservation.expires_at <= func.now(),
                )
                .order_by(Reservation.expires_at)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
                .execution_options(populate_existing=True)
            )
        ).all()
    )
    if not due:
        return 0
    by_id = {reservation.id: reservation for reservation in due}
    items = (
        await session.execute(
            select(
                ReservationItem.reservation_id,
                ReservationItem.product_id,
                ReservationItem.quantity,
                Product.sku,
            )
            .join(Product, Product.id == ReservationItem.product_id)
            .where(ReservationItem.reservation_id.in_(list(by_id)))
        )
    ).all()
    # Across the whole batch, stock rows in the global (depot_id, product_id) order.
    ordered = sorted(
        items, key=lambda i: (by_id[i.reservation_id].depot_id, i.product_id, i.reservation_id)
    )
    for item in ordered:
        await _move_reserved(
            session,
            by_id[item.reservation_id],
            product_id=item.product_id,
            sku=item.sku,
            quantity=item.quantity,
            kind=MovementKind.EXPIRE,
            actor=SWEEPER_ACTOR,
        )
    for reservation in due:
        await _set_status(session, reservation, ReservationStatus.EXPIRED)
        await events.reservation_expired(
            session,
            reservation_id=reservation.id,
            order_id=reservation.order_id,
            depot_id=reservation.depot_id,
            vendor_id=reservation.vendor_id,
            items=[
                {"product_id": str(i.product_id), "quantity": i.quantity}
                for i in items
                if i.reservation_id == reservation.id
            ],
        )
    return len(due)
