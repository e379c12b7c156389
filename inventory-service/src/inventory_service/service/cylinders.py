"""The cylinder ledger (SPEC): every serial-tracked oxygen cylinder of a vendor, where it
is, and every move it made.

A cylinder sits at its depot (`full`, `empty`, `quarantined`, `retired`), travels on an
order (`in_transit`), or is held by a hospital (`at_hospital`) with the deposit its
delivery charged. Each change writes one `CylinderMove` in the same transaction, so the
moves of a cylinder form a chain whose last `to` is where it is.

Every writer locks the rows it moves (SELECT ... FOR UPDATE, in id order so two writers
never deadlock) and checks their state on the locked, latest version: two orders naming
the same full serial at once are serialised by PostgreSQL, and the second sees it in
transit. A refusal raises before anything is written, and the unit of work rolls back.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.pagination import PageParams, fetch_page
from inventory_service import events
from inventory_service.errors import (
    CylinderNotAtDepot,
    CylinderNotFillable,
    CylinderNotFound,
    CylindersRefused,
    MiscountedLine,
    NotACylinderProduct,
    ProductNotFound,
    RefusedCylinder,
    SerialTaken,
)
from inventory_service.models import (
    Cylinder,
    CylinderMove,
    CylinderStatus,
    Product,
    ProductCategory,
)
from inventory_service.schemas import (
    CylinderCreate,
    CylinderDeliver,
    CylinderDispatch,
    HeldCylinderOut,
    OverdueCylinderOut,
)
from inventory_service.service.stock import vendor_depot

AT_DEPOT = frozenset(
    {
        CylinderStatus.FULL.value,
        CylinderStatus.EMPTY.value,
        CylinderStatus.QUARANTINED.value,
        CylinderStatus.RETIRED.value,
    }
)
# Where a hydrotest may be done: at the depot and still in service.
TESTABLE = frozenset(
    {CylinderStatus.FULL.value, CylinderStatus.EMPTY.value, CylinderStatus.QUARANTINED.value}
)
ZERO = Decimal("0.00")

REASON_REGISTERED = "registered"
REASON_DISPATCHED = "dispatched"
REASON_UNASSIGNED = "taken off the order's dispatch"
REASON_DELIVERED = "delivered"
REASON_RETURNED = "returned on delivery"
REASON_COLLECTED = "collected"
REASON_ORDER_ENDED = "order cancelled"
REASON_FILLED = "filled"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who moves a cylinder: a user of an organisation, or the system (both None)."""

    user_id: uuid.UUID | None
    org_id: uuid.UUID | None


SYSTEM = Actor(None, None)


def place(cylinder: Cylinder) -> str:
    """Where a cylinder is, as the moves name it."""
    if cylinder.status == CylinderStatus.AT_HOSPITAL.value:
        return f"hospital:{cylinder.holder_org_id}"
    if cylinder.status == CylinderStatus.IN_TRANSIT.value:
        return f"order:{cylinder.order_id}"
    return f"depot:{cylinder.depot_id}"


class _Moves:
    """The moves of one transaction, written together once the cylinders have moved."""

    def __init__(self, actor: Actor, now: datetime) -> None:
        self.actor, self.now = actor, now
        self.rows: list[dict[str, Any]] = []

    def change(
        self,
        cylinder: Cylinder,
        reason: str,
        *,
        on_order: uuid.UUID | None = None,
        **values: Any,
    ) -> None:
        """Set `values` on `cylinder` and record the move from where it was; `on_order`
        is the order the move is made for."""
        from_status, from_place = cylinder.status, place(cylinder)
        for name, value in values.items():
            setattr(cylinder, name, value)
        cylinder.updated_at = self.now
        self.record(cylinder, reason, order_id=on_order, from_=(from_status, from_place))

    def record(
        self,
        cylinder: Cylinder,
        reason: str,
        *,
        order_id: uuid.UUID | None,
        from_: tuple[str | None, str | None] = (None, None),
    ) -> None:
        self.rows.append(
            {
                "cylinder_id": cylinder.id,
                "at": self.now,
                "actor_id": self.actor.user_id,
                "actor_org_id": self.actor.org_id,
                "from_status": from_[0],
                "to_status": cylinder.status,
                "from_place": from_[1],
                "to_place": place(cylinder),
                "order_id": order_id,
                "reason": reason,
            }
        )

    async def write(self, session: AsyncSession) -> None:
        await session.flush()
        if self.rows:
            await session.execute(insert(CylinderMove), self.rows)


# --- registration --------------------------------------------------------------------


async def _cylinder_products(session: AsyncSession, product_ids: Iterable[uuid.UUID]) -> None:
    wanted = set(product_ids)
    rows = await session.execute(select(Product.id, Product.category).where(Product.id.in_(wanted)))
    categories = {row.id: row.category for row in rows}
    if wanted - categories.keys():
        raise ProductNotFound()
    if any(c != ProductCategory.OXYGEN_CYLINDER.value for c in categories.values()):
        raise NotACylinderProduct("Only oxygen cylinders are tracked by serial.")


async def register(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    bodies: Sequence[CylinderCreate],
    *,
    actor: Actor,
    now: datetime,
) -> list[Cylinder]:
    """Register the vendor's new cylinders, all or none (serials unique in `bodies`)."""
    for depot_id in {body.depot_id for body in bodies}:
        await vendor_depot(session, vendor_id, depot_id)
    await _cylinder_products(session, (body.product_id for body in bodies))
    serials = [body.serial for body in bodies]
    taken = await session.scalars(
        select(Cylinder.serial).where(Cylinder.vendor_id == vendor_id, Cylinder.serial.in_(serials))
    )
    if found := taken.all():
        raise SerialTaken(found)
    rows = [
        {
            "id": uuid.uuid4(),
            "vendor_id": vendor_id,
            "serial": body.serial,
            "product_id": body.product_id,
            "status": body.status,
            "depot_id": body.depot_id,
            "hydrotest_due": body.hydrotest_due,
            "deposit": ZERO,
            "created_at": now,
            "updated_at": now,
        }
        # In serial order: two registrations of overlapping serials wait on each other
        # in the same order, never in a deadlock.
        for body in sorted(bodies, key=lambda b: b.serial)
    ]
    # A registration racing this one past the check above: the unique constraint decides.
    inserted = await session.scalars(
        pg_insert(Cylinder)
        .values(rows)
        .on_conflict_do_nothing(index_elements=[Cylinder.vendor_id, Cylinder.serial])
        .returning(Cylinder.serial)
    )
    landed = set(inserted.all())
    if len(landed) != len(rows):
        raise SerialTaken([s for s in serials if s not in landed])
    cylinders = (
        await session.scalars(
            select(Cylinder)
            .where(Cylinder.vendor_id == vendor_id, Cylinder.serial.in_(serials))
            .order_by(Cylinder.serial)
        )
    ).all()
    moves = _Moves(actor, now)
    for cylinder in cylinders:
        moves.record(cylinder, REASON_REGISTERED, order_id=None)
    await moves.write(session)
    return list(cylinders)


# --- reading -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CylinderFilter:
    status: CylinderStatus | None = None
    holder_org_id: uuid.UUID | None = None
    hydrotest_due_before: date | None = None
    depot_id: uuid.UUID | None = None
    product_id: uuid.UUID | None = None


async def list_cylinders(
    session: AsyncSession, vendor_id: uuid.UUID, where: CylinderFilter, pagination: PageParams
) -> tuple[Sequence[Cylinder], int]:
    statement: Select[Any] = select(Cylinder).where(Cylinder.vendor_id == vendor_id)
    if where.status is not None:
        statement = statement.where(Cylinder.status == where.status.value)
    if where.holder_org_id is not None:
        statement = statement.where(Cylinder.holder_org_id == where.holder_org_id)
    if where.hydrotest_due_before is not None:
        statement = statement.where(Cylinder.hydrotest_due < where.hydrotest_due_before)
    if where.depot_id is not None:
        statement = statement.where(Cylinder.depot_id == where.depot_id)
    if where.product_id is not None:
        statement = statement.where(Cylinder.product_id == where.product_id)
    return await fetch_page(session, statement.order_by(Cylinder.serial), pagination)


async def get_cylinder(
    session: AsyncSession, vendor_id: uuid.UUID, serial: str, *, lock: bool = False
) -> Cylinder:
    """The vendor's cylinder; another vendor's serial is 404, never 403."""
    statement = select(Cylinder).where(Cylinder.vendor_id == vendor_id, Cylinder.serial == serial)
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    cylinder = await session.scalar(statement)
    if cylinder is None:
        raise CylinderNotFound()
    return cylinder


async def moves_of(session: AsyncSession, cylinder_id: uuid.UUID) -> Sequence[CylinderMove]:
    """Oldest first."""
    rows = await session.scalars(
        select(CylinderMove)
        .where(CylinderMove.cylinder_id == cylinder_id)
        .order_by(CylinderMove.id)
    )
    return rows.all()


async def held(
    session: AsyncSession,
    hospital_org_id: uuid.UUID,
    pagination: PageParams,
    *,
    return_days: int,
    now: datetime,
) -> tuple[list[HeldCylinderOut], int]:
    """The cylinders the hospital holds, oldest first, with when each is due back."""
    statement = (
        select(Cylinder)
        .where(Cylinder.holder_org_id == hospital_org_id)
        .order_by(Cylinder.held_since, Cylinder.id)
    )
    rows, total = await fetch_page(session, statement, pagination)
    window = timedelta(days=return_days)
    items = []
    for cylinder in rows:
        assert cylinder.held_since is not None  # the CHECK: held ⇔ at_hospital
        due = cylinder.held_since + window
        items.append(
            HeldCylinderOut(
                serial=cylinder.serial,
                product_id=cylinder.product_id,
                vendor_id=cylinder.vendor_id,
                order_id=cylinder.order_id,
                since=cylinder.held_since,
                deposit=cylinder.deposit,
                currency=cylinder.deposit_currency,
                return_due=due,
                overdue=now > due,
            )
        )
    return items, total


async def overdue(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    pagination: PageParams,
    *,
    return_days: int,
    now: datetime,
) -> tuple[list[OverdueCylinderOut], int]:
    """The vendor's cylinders held by hospitals longer than `return_days`, oldest first."""
    statement = (
        select(Cylinder)
        .where(
            Cylinder.vendor_id == vendor_id,
            Cylinder.status == CylinderStatus.AT_HOSPITAL.value,
            Cylinder.held_since < now - timedelta(days=return_days),
        )
        .order_by(Cylinder.held_since, Cylinder.id)
    )
    rows, total = await fetch_page(session, statement, pagination)
    items = []
    for cylinder in rows:
        assert cylinder.held_since is not None
        assert cylinder.holder_org_id is not None
        items.append(
            OverdueCylinderOut(
                serial=cylinder.serial,
                product_id=cylinder.product_id,
                depot_id=cylinder.depot_id,
                holder_org_id=cylinder.holder_org_id,
                order_id=cylinder.order_id,
                since=cylinder.held_since,
                days_held=(now - cylinder.held_since).days,
                deposit=cylinder.deposit,
                currency=cylinder.deposit_currency,
            )
        )
    return items, total


# --- at the depot: hydrotest, fill, retire -------------------------------------------------


async def hydrotest(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    serial: str,
    *,
    passed: bool,
    next_due: date | None,
    actor: Actor,
    now: datetime,
) -> Cylinder:
    """A passed test sets the next due date (and releases a quarantined cylinder as
    empty: it has to be filled again); a failed one quarantines it."""
    cylinder = await get_cylinder(session, vendor_id, serial, lock=True)
    if cylinder.status not in TESTABLE:
        raise CylinderNotAtDepot("A hydrotest is done at the depot, on a cylinder in service.")
    moves = _Moves(actor, now)
    if passed:
        assert next_due is not None  # the schema requires it with passed
        status = (
            CylinderStatus.EMPTY.value
            if cylinder.status == CylinderStatus.QUARANTINED.value
            else cylinder.status
        )
        moves.change(
            cylinder,
            f"hydrotest passed, next due {next_due.isoformat()}",
            status=status,
            hydrotest_due=next_due,
        )
    else:
        moves.change(cylinder, "hydrotest failed", status=CylinderStatus.QUARANTINED.value)
    await moves.write(session)
    return cylinder


async def fill(
    session: AsyncSession, vendor_id: uuid.UUID, serial: str, *, actor: Actor, now: datetime
) -> Cylinder:
    cylinder = await get_cylinder(session, vendor_id, serial, lock=True)
    if cylinder.status not in AT_DEPOT:
        raise CylinderNotAtDepot("The cylinder is not at its depot.")
    if cylinder.status != CylinderStatus.EMPTY.value:
        raise CylinderNotFillable(
            f"Only an empty cylinder is filled; this one is {cylinder.status}."
        )
    if cylinder.hydrotest_due < now.date():
        raise CylinderNotFillable("The cylinder's hydrotest is overdue: test it first.")
    moves = _Moves(actor, now)
    moves.change(cylinder, REASON_FILLED, status=CylinderStatus.FULL.value)
    await moves.write(session)
    return cylinder


async def retire(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    serial: str,
    *,
    reason: str,
    actor: Actor,
    now: datetime,
) -> Cylinder:
    cylinder = await get_cylinder(session, vendor_id, serial, lock=True)
    if cylinder.status not in TESTABLE:  # retired already, or away from the depot
        raise CylinderNotAtDepot("Only a cylinder in service at its depot is retired.")
    moves = _Moves(actor, now)
    moves.change(cylinder, f"retired: {reason}", status=CylinderStatus.RETIRED.value)
    await moves.write(session)
    return cylinder


# --- orders: dispatch, delivery, returns, ends ------------------------------------------


async def _lock(
    session: AsyncSession,
    *,
    vendor_id: uuid.UUID | None = None,
    serials: Iterable[str] = (),
    in_transit_on: uuid.UUID | None = None,
) -> list[Cylinder]:
    """Lock, in one statement and in id order, the vendor's `serials` and the cylinders
    in transit on `in_transit_on`: every writer locks all it moves at once in the same
    order, so two never deadlock, and each reads the latest committed state."""
    wanted = list(serials)
    conditions: list[ColumnElement[bool]] = []
    if vendor_id is not None and wanted:
        conditions.append(and_(Cylinder.vendor_id == vendor_id, Cylinder.serial.in_(wanted)))
    if in_transit_on is not None:
        conditions.append(
            and_(
                Cylinder.order_id == in_transit_on,
                Cylinder.status == CylinderStatus.IN_TRANSIT.value,
            )
        )
    if not conditions:
        return []
    rows = await session.scalars(
        select(Cylinder)
        .where(or_(*conditions))
        .order_by(Cylinder.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


def _named(
    cylinders: Iterable[Cylinder], vendor_id: uuid.UUID, serials: Iterable[str]
) -> dict[str, Cylinder]:
    wanted = set(serials)
    return {c.serial: c for c in cylinders if c.vendor_id == vendor_id and c.serial in wanted}


def _in_transit_on(cylinders: Iterable[Cylinder], order_id: uuid.UUID) -> list[Cylinder]:
    return [
        c
        for c in cylinders
        if c.order_id == order_id and c.status == CylinderStatus.IN_TRANSIT.value
    ]


async def dispatch(
    session: AsyncSession, body: CylinderDispatch, *, actor: Actor, now: datetime
) -> list[Cylinder]:
    """Put the named full serials in transit on the order: each cylinder line named
    exactly its quantity, every serial full (or already on this order) at the order's
    depot and within its hydrotest date, else CylindersRefused and nothing moves. A
    repeat keeps the serials named again and sends the order's others back to full."""
    rows = await session.execute(
        select(Product.id, Product.category).where(
            Product.id.in_({line.product_id for line in body.lines})
        )
    )
    categories: dict[uuid.UUID, str] = {row.id: row.category for row in rows}
    wanted: Counter[uuid.UUID] = Counter()
    for line in body.lines:
        if categories.get(line.product_id) == ProductCategory.OXYGEN_CYLINDER.value:
            wanted[line.product_id] += line.quantity
    locked = await _lock(
        session, vendor_id=body.vendor_id, serials=body.serials, in_transit_on=body.order_id
    )
    # The order's earlier assignment: whatever is not named again goes back.
    earlier = _in_transit_on(locked, body.order_id)
    named = _named(locked, body.vendor_id, body.serials)
    today = now.date()
    refused: list[RefusedCylinder] = []
    counted: Counter[uuid.UUID] = Counter()
    for serial in body.serials:
        cylinder = named.get(serial)
        reason = None
        if cylinder is None or cylinder.status == CylinderStatus.RETIRED.value:
            reason = "unknown"
        elif cylinder.product_id not in wanted:
            reason = "not_on_order"
        elif not (
            cylinder.status == CylinderStatus.FULL.value
            or (
                cylinder.status == CylinderStatus.IN_TRANSIT.value
                and cylinder.order_id == body.order_id
            )
        ):
            reason = "not_full"
        elif cylinder.depot_id != body.depot_id:
            reason = "wrong_depot"
        elif cylinder.hydrotest_due < today:
            reason = "hydrotest_overdue"
        if reason is not None:
            refused.append(RefusedCylinder(serial, reason))
        if cylinder is not None and reason != "unknown" and cylinder.product_id in wanted:
            counted[cylinder.product_id] += 1
    miscounted = [
        MiscountedLine(product_id, quantity, counted[product_id])
        for product_id, quantity in sorted(wanted.items())
        if counted[product_id] != quantity
    ]
    if refused or miscounted:
        raise CylindersRefused(refused, miscounted)
    moves = _Moves(actor, now)
    chosen = set(body.serials)
    for cylinder in earlier:
        if cylinder.serial not in chosen or cylinder.vendor_id != body.vendor_id:
            moves.change(
                cylinder,
                REASON_UNASSIGNED,
                on_order=body.order_id,
                status=CylinderStatus.FULL.value,
                order_id=None,
            )
    for serial in body.serials:
        cylinder = named[serial]
        if cylinder.status == CylinderStatus.FULL.value:
            moves.change(
                cylinder,
                REASON_DISPATCHED,
                on_order=body.order_id,
                status=CylinderStatus.IN_TRANSIT.value,
                order_id=body.order_id,
            )
    await moves.write(session)
    return [named[serial] for serial in body.serials]


@dataclass(frozen=True, slots=True)
class Delivery:
    delivered: list[tuple[str, uuid.UUID]]
    returned: list[tuple[str, uuid.UUID]]


async def _moved_on_order(
    session: AsyncSession, order_id: uuid.UUID, *, from_status: str, to_status: str
) -> list[tuple[str, uuid.UUID]]:
    """(serial, product) of the cylinders the order's moves took from one status to
    another: what an earlier delivery of the order did."""
    rows = await session.execute(
        select(Cylinder.serial, Cylinder.product_id)
        .join(CylinderMove, CylinderMove.cylinder_id == Cylinder.id)
        .where(
            CylinderMove.order_id == order_id,
            CylinderMove.from_status == from_status,
            CylinderMove.to_status == to_status,
        )
        .distinct()
        .order_by(Cylinder.serial)
    )
    return [(row.serial, row.product_id) for row in rows]


async def deliver(
    session: AsyncSession, body: CylinderDeliver, *, actor: Actor, now: datetime
) -> Delivery:
    """The order's cylinders in transit go to the hospital, charged their deposit; the
    returned ones go back to the order's depot empty. A replay moves nothing new."""
    locked = await _lock(
        session, vendor_id=body.vendor_id, serials=body.returned, in_transit_on=body.order_id
    )
    in_transit = _in_transit_on(locked, body.order_id)
    returned = _named(locked, body.vendor_id, body.returned)
    # Read once the rows are locked, so a replay racing the first delivery sees what it
    # did: those it took back are answered, not refused.
    already_returned = {
        serial
        for serial, _ in await _moved_on_order(
            session,
            body.order_id,
            from_status=CylinderStatus.AT_HOSPITAL.value,
            to_status=CylinderStatus.EMPTY.value,
        )
    }
    to_return = [s for s in body.returned if s not in already_returned]
    if to_return:  # the empties go to the order's depot, which must be the vendor's
        await vendor_depot(session, body.vendor_id, body.depot_id)
    refused = []
    for serial in to_return:
        cylinder = returned.get(serial)
        if cylinder is None or cylinder.status == CylinderStatus.RETIRED.value:
            refused.append(RefusedCylinder(serial, "unknown"))
        elif (
            cylinder.status != CylinderStatus.AT_HOSPITAL.value
            or cylinder.holder_org_id != body.hospital_org_id
        ):
            refused.append(RefusedCylinder(serial, "not_held"))
    if refused:
        raise CylindersRefused(refused)
    deposits = {d.product_id: d for d in body.deposits}
    moves = _Moves(actor, now)
    for cylinder in in_transit:
        deposit = deposits.get(cylinder.product_id)
        moves.change(
            cylinder,
            REASON_DELIVERED,
            on_order=body.order_id,
            status=CylinderStatus.AT_HOSPITAL.value,
            holder_org_id=body.hospital_org_id,
            held_since=now,
            deposit=deposit.deposit_per_unit if deposit else ZERO,
            deposit_currency=deposit.currency if deposit else None,
        )
    for serial in to_return:
        await _take_back(
            session,
            moves,
            returned[serial],
            depot_id=body.depot_id,
            returned_order_id=body.order_id,
            reason=REASON_RETURNED,
        )
    await moves.write(session)
    return Delivery(
        delivered=await _moved_on_order(
            session,
            body.order_id,
            from_status=CylinderStatus.IN_TRANSIT.value,
            to_status=CylinderStatus.AT_HOSPITAL.value,
        ),
        returned=await _moved_on_order(
            session,
            body.order_id,
            from_status=CylinderStatus.AT_HOSPITAL.value,
            to_status=CylinderStatus.EMPTY.value,
        ),
    )


async def _take_back(
    session: AsyncSession,
    moves: _Moves,
    cylinder: Cylinder,
    *,
    depot_id: uuid.UUID,
    returned_order_id: uuid.UUID | None,
    reason: str,
) -> None:
    """A held cylinder back at `depot_id`, empty, and its `cylinder.returned` event."""
    assert cylinder.holder_org_id is not None
    hospital_org_id, deposit_order_id = cylinder.holder_org_id, cylinder.order_id
    deposit, currency = cylinder.deposit, cylinder.deposit_currency
    moves.change(
        cylinder,
        reason,
        on_order=returned_order_id,
        status=CylinderStatus.EMPTY.value,
        depot_id=depot_id,
        holder_org_id=None,
        held_since=None,
        order_id=None,
        deposit=ZERO,
        deposit_currency=None,
    )
    await events.cylinder_returned(
        session,
        cylinder_id=cylinder.id,
        serial=cylinder.serial,
        vendor_id=cylinder.vendor_id,
        product_id=cylinder.product_id,
        hospital_org_id=hospital_org_id,
        depot_id=depot_id,
        deposit_order_id=deposit_order_id,
        returned_order_id=returned_order_id,
        deposit=deposit,
        currency=currency,
        returned_at=moves.now,
    )


async def collect(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    depot_id: uuid.UUID,
    serials: Sequence[str],
    *,
    actor: Actor,
    now: datetime,
) -> list[Cylinder]:
    """A collection without a delivery: each held serial back empty at the vendor's
    `depot_id`, all or none."""
    await vendor_depot(session, vendor_id, depot_id)
    found = _named(await _lock(session, vendor_id=vendor_id, serials=serials), vendor_id, serials)
    refused = []
    for serial in serials:
        cylinder = found.get(serial)
        if cylinder is None or cylinder.status == CylinderStatus.RETIRED.value:
            refused.append(RefusedCylinder(serial, "unknown"))
        elif cylinder.status != CylinderStatus.AT_HOSPITAL.value:
            refused.append(RefusedCylinder(serial, "not_held"))
    if refused:
        raise CylindersRefused(refused)
    moves = _Moves(actor, now)
    for serial in serials:
        await _take_back(
            session,
            moves,
            found[serial],
            depot_id=depot_id,
            returned_order_id=None,
            reason=REASON_COLLECTED,
        )
    await moves.write(session)
    return [found[serial] for serial in serials]


async def order_ended(session: AsyncSession, order_id: uuid.UUID, *, now: datetime) -> int:
    """An order that ended undelivered gives its cylinders in transit back to their
    depot, full. A redelivered event finds none left: idempotent. Returns how many."""
    cylinders = await _lock(session, in_transit_on=order_id)
    moves = _Moves(SYSTEM, now)
    for cylinder in cylinders:
        moves.change(
            cylinder,
            REASON_ORDER_ENDED,
            on_order=order_id,
            status=CylinderStatus.FULL.value,
            order_id=None,
        )
    await moves.write(session)
    return len(cylinders)
