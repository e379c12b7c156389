"""Hospital sites' oxygen supply: reports, deliveries, inbound orders and the alerts.

The arithmetic is service/runway.py; this module keeps the state it works on:

- **A report** (`report`) sets a site's state: its full units' gas and its rate, at the
  moment it is made. The report is the truth at its time, so a delivery that happened
  before it is in it already.
- **A delivery** (`project_order_event`, on `order.delivered` for an order to the site)
  drains the state to the delivery's moment and adds the order's gas, once.
- **Inbound** are the site's orders not yet delivered or ended, as order-service's events
  describe them (`supply_orders`).
- **Levels** are evaluated on each report and delivery, and by the alert job when time
  alone changes them (`settle_due`, on the indexed `next_check_at`). An alert fires when
  the level becomes more severe than the one last evaluated (`runway.crossing`): once
  per crossing, again only after a recovery.

Every writer locks the site's row, so a report, a delivery and the alert job never
interleave on one site, and the job skips rows someone else holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from functools import partial
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.auth import Principal
from flow_shared.clock import Clock, utcnow
from flow_shared.db import Database
from flow_shared.errors import Forbidden
from flow_shared.lifecycle import run_in_batches
from flow_shared.metrics import business_counter
from flow_shared.pagination import PageParams
from inventory_service import events
from inventory_service.clients import Site
from inventory_service.errors import GasUnknown, SupplyNotReported, UnknownProducts
from inventory_service.models import (
    AutoReorder,
    Product,
    RunwayLevel,
    SiteSupply,
    SiteSupplyCount,
    SupplyOrder,
    SupplyOrderStatus,
)
from inventory_service.schemas import (
    GAS_CATEGORIES,
    AutoReorderOut,
    AutoReorderRequestOut,
    InboundOut,
    RunwayOut,
    SupplyReport,
)
from inventory_service.service import auto_reorder, runway
from inventory_service.service.runway import GasUnits, InboundOrder, PatientGroup, SupplyState

RUNWAY_ALERTS = business_counter(
    "flow_inventory_runway_alerts_total",
    "Oxygen runway alerts raised, by level (once per crossing).",
    ("level",),
)

OPEN_STATUSES = (
    SupplyOrderStatus.PLACED,
    SupplyOrderStatus.CONFIRMED,
    SupplyOrderStatus.DISPATCHED,
)
# How far along an order is: a status only ever moves forward, so an event that arrives
# after a later one changes nothing. Every end (delivered or not) is final.
STATUS_RANK: dict[str, int] = {status.value: rank for rank, status in enumerate(OPEN_STATUSES)} | {
    status.value: len(OPEN_STATUSES) for status in SupplyOrderStatus if status not in OPEN_STATUSES
}
HOURS_SHOWN = Decimal("0.01")
MINUTES_PER_DAY = 24 * 60


# --- the state of a site -----------------------------------------------------------------


def _state(site: SiteSupply) -> SupplyState:
    return SupplyState(
        gas_liters=site.gas_liters, consumption_lpm=site.consumption_lpm, as_of=site.as_of
    )


def _moment(compute: Any, *args: Any, **kwargs: Any) -> datetime | None:
    """A moment the arithmetic gives, or None past the calendar's end (year 9999): a
    site so well stocked that it never runs out in any sense that matters."""
    try:
        moment: datetime | None = compute(*args, **kwargs)
    except OverflowError:
        return None
    return moment


async def _settle(session: AsyncSession, site: SiteSupply, now: datetime) -> None:
    """Evaluate the site's level at `now` after its state or time moved: store the level
    and the two moments that follow from the state, and raise the alert of a crossing."""
    state = _state(site)
    thresholds = {"alert_hours": site.alert_hours, "critical_hours": site.critical_hours}
    hours = runway.hours_left(state, now)
    new_level = runway.level(hours, **thresholds)
    alert = runway.crossing(_stored_level(site.level), new_level)
    site.level = new_level
    # From the report's moment, not from now: once the gas is out this stays the moment
    # it ran out, and it only changes when the state does (the lists sort on it).
    site.runs_out_at = _moment(runway.runs_out_at, state, state.as_of)
    site.next_check_at = _moment(runway.next_level_change_at, state, now, **thresholds)
    site.updated_at = now
    if alert is not None and hours is not None:
        RUNWAY_ALERTS.labels(level=alert).inc()
        await auto_reorder.request_on_alert(session, site, alert, now=now)
        await events.runway_alert(
            session,
            site_id=site.site_id,
            hospital_org_id=site.hospital_org_id,
            site_name=site.site_name,
            level=alert,
            hours_left=_shown(hours),
            runs_out_at=site.runs_out_at,
            gas_liters=runway.remaining(state, now),
            consumption_lpm=state.consumption_lpm,
            alert_hours=site.alert_hours,
            critical_hours=site.critical_hours,
            as_of=now,
        )


def _stored_level(value: str) -> runway.RunwayLevel:
    """The level column as the arithmetic names it (the CHECK allows only these)."""
    level = RunwayLevel(value)
    if level is RunwayLevel.LOW:
        return "low"
    if level is RunwayLevel.CRITICAL:
        return "critical"
    return "ok"


def _shown(hours: Decimal) -> Decimal:
    # Rounded down: a runway is never shown longer than it is.
    return hours.quantize(HOURS_SHOWN, rounding=ROUND_DOWN)


async def _gas_per_unit(
    session: AsyncSession, product_ids: Iterable[uuid.UUID], *, known: bool
) -> dict[uuid.UUID, Decimal | None]:
    """Litres of gas per unit of each product (None: it holds none). `known`: every id
    must be a product (a report's), else UnknownProducts, and one that holds oxygen must
    say how much, else GasUnknown; otherwise an unknown one holds no gas (an order's line
    the catalogue no longer has)."""
    wanted = set(product_ids)
    if not wanted:
        return {}
    rows = (
        await session.execute(
            select(Product.id, Product.gas_liters, Product.category).where(Product.id.in_(wanted))
        )
    ).all()
    gas: dict[uuid.UUID, Decimal | None] = {row.id: row.gas_liters for row in rows}
    missing = wanted - gas.keys()
    if known and missing:
        raise UnknownProducts(sorted(missing))
    unset = [row.id for row in rows if row.gas_liters is None and row.category in GAS_CATEGORIES]
    if known and unset:
        raise GasUnknown(unset)
    return gas | dict.fromkeys(missing)


# --- reports -------------------------------------------------------------------------------


async def report(
    session: AsyncSession,
    principal: Principal,
    site: Site,
    body: SupplyReport,
    *,
    now: datetime,
) -> SiteSupply:
    """Set the site's supply from the hospital's report (location-service has said the
    site is `principal`'s) and evaluate its level."""
    named = [line.product_id for line in body.stock]
    if body.auto_reorder is not None:
        named.append(body.auto_reorder.product_id)
    gas = await _gas_per_unit(session, named, known=True)
    patients = None
    if body.patients is not None:
        patients = [PatientGroup(count=g.count, flow_lpm=g.flow_lpm) for g in body.patients]
    state = runway.state_from_report(
        stock=[GasUnits(line.full_units, gas[line.product_id]) for line in body.stock],
        as_of=now,
        consumption_lpm=body.consumption_lpm,
        patients=patients,
    )
    reorder = body.auto_reorder
    values: dict[str, Any] = {
        "hospital_org_id": principal.org_id,
        "site_name": (site.name or "")[:200] or None,
        "gas_liters": state.gas_liters,
        "consumption_lpm": state.consumption_lpm,
        "as_of": now,
        "stock": [
            {"product_id": str(line.product_id), "full_units": line.full_units}
            for line in body.stock
        ],
        "patients": (
            None
            if body.patients is None
            else [{"count": g.count, "flow_lpm": str(g.flow_lpm)} for g in body.patients]
        ),
        "reported_at": now,
        "reported_by": principal.user_id,
        "alert_hours": body.alert_hours,
        "critical_hours": body.critical_hours,
        "auto_reorder_product_id": reorder.product_id if reorder else None,
        "auto_reorder_quantity": reorder.quantity if reorder else None,
        "auto_reorder_priority": reorder.priority if reorder else None,
    }
    # The first report of a site inserts its row (level "ok": a site reported already low
    # alerts); two at once both land here and the lock below orders them.
    await session.execute(
        pg_insert(SiteSupply)
        .values(site_id=site.id, level=RunwayLevel.OK.value, **values)
        .on_conflict_do_nothing(index_elements=[SiteSupply.site_id])
    )
    row = await _locked_site(session, site.id)
    if row is None:  # pragma: no cover - inserted just above, in this transaction
        raise SupplyNotReported()
    for name, value in values.items():
        setattr(row, name, value)
    await _settle(session, row, now)
    await events.supply_reported(
        session,
        site_id=site.id,
        hospital_org_id=principal.org_id,
        consumption_lpm=state.consumption_lpm,
        as_of=now,
        daily_units=await _daily_units(session, state.consumption_lpm),
    )
    await session.flush()
    return row


async def _daily_units(session: AsyncSession, consumption_lpm: Decimal) -> dict[uuid.UUID, Decimal]:
    """Units of each oxygen product a day at this rate (what order-service's cap floor
    needs, in its own unit: it knows products by id, not by their gas)."""
    rows = await session.execute(
        select(Product.id, Product.gas_liters).where(Product.gas_liters.is_not(None))
    )
    per_day = consumption_lpm * MINUTES_PER_DAY
    return {row.id: per_day / row.gas_liters for row in rows}


async def _locked_site(session: AsyncSession, site_id: uuid.UUID) -> SiteSupply | None:
    site: SiteSupply | None = await session.scalar(
        select(SiteSupply)
        .where(SiteSupply.site_id == site_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return site


# --- orders bound for sites: inbound, and deliveries -------------------------------------


class OrderLine(BaseModel):
    model_config = ConfigDict(extra="ignore")

    product_id: uuid.UUID
    quantity: int


class OrderEventData(BaseModel):
    """What the supply projection reads of an order.* event (order-service's contract)."""

    model_config = ConfigDict(extra="ignore")

    order_id: uuid.UUID
    hospital_org_id: uuid.UUID
    status: SupplyOrderStatus
    site_id: uuid.UUID | None = None
    eta: datetime | None = None
    sos_id: uuid.UUID | None = None
    items: list[OrderLine]


def _rank(status: ColumnElement[str]) -> ColumnElement[int]:
    return case(STATUS_RANK, value=status, else_=-1)


async def project_order_event(
    session: AsyncSession, data: OrderEventData, *, occurred_at: datetime, now: datetime
) -> None:
    """Keep the site's view of one of its orders; a delivery adds its gas to the site.

    An order to a free delivery address (no site) is not a site's. The status moves
    forward only, and the delivery is added when the status first becomes delivered,
    so a redelivered or late event never adds it twice."""
    if data.site_id is None:
        return
    items = [{"product_id": str(line.product_id), "quantity": line.quantity} for line in data.items]
    row = pg_insert(SupplyOrder).values(
        order_id=data.order_id,
        site_id=data.site_id,
        hospital_org_id=data.hospital_org_id,
        status=data.status.value,
        eta=data.eta,
        items=items,
        updated_at=occurred_at,
    )
    current, new = SupplyOrder.__table__.c, row.excluded
    advanced = await session.execute(
        row.on_conflict_do_update(
            index_elements=[current.order_id],
            set_={
                "status": new.status,
                "eta": func.coalesce(new.eta, current.eta),
                "items": new["items"],
                "updated_at": new.updated_at,
            },
            where=_rank(new.status) > _rank(current.status),
        ).returning(current.order_id)
    )
    if advanced.first() is None:
        return
    ended = data.status not in OPEN_STATUSES
    await auto_reorder.order_moved(
        session, order_id=data.order_id, sos_id=data.sos_id, ended=ended, now=now
    )
    if data.status == SupplyOrderStatus.DELIVERED:
        await _add_delivery(session, data, delivered_at=occurred_at, now=now)


async def _add_delivery(
    session: AsyncSession, order: OrderEventData, *, delivered_at: datetime, now: datetime
) -> None:
    assert order.site_id is not None
    site = await _locked_site(session, order.site_id)
    if site is None or site.hospital_org_id != order.hospital_org_id:
        return  # no report yet: the site's first report counts what it has
    gas = await _gas_per_unit(session, (line.product_id for line in order.items), known=False)
    units = [GasUnits(line.quantity, gas[line.product_id]) for line in order.items]
    state = _state(site)
    moved = runway.apply_delivery(state, delivered_at=delivered_at, units=units)
    if moved is state:
        return  # delivered before the last report, which counted it
    site.gas_liters, site.as_of = moved.gas_liters, moved.as_of
    order_row = await session.get(SupplyOrder, order.order_id)
    if order_row is not None:
        order_row.delivered_at = delivered_at
    await _settle(session, site, now)


# --- the alert job -------------------------------------------------------------------------


async def settle_due(session: AsyncSession, *, now: datetime, batch_size: int) -> int:
    """Evaluate up to `batch_size` sites whose level time alone has changed by `now`
    (one indexed query, whatever the number of sites); returns how many. SKIP LOCKED:
    several processes share the work, and a site being reported is left to its report."""
    due = await session.scalars(
        select(SiteSupply)
        .where(SiteSupply.next_check_at <= now)
        .order_by(SiteSupply.next_check_at)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    )
    sites = due.all()
    for site in sites:
        await _settle(session, site, now)
    return len(sites)


class RunwayAlertJob:
    """The periodic evaluation of every site time has moved to a new level, a batch per
    transaction, on the clock it is given."""

    def __init__(self, database: Database, *, clock: Clock = utcnow, batch_size: int) -> None:
        self.database = database
        self.clock = clock
        self.batch_size = batch_size

    async def run_once(self) -> int:
        return await run_in_batches(
            self.database,
            partial(settle_due, now=self.clock(), batch_size=self.batch_size),
            batch_size=self.batch_size,
        )


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _InboundLine:
    order: SupplyOrder
    product_id: uuid.UUID
    quantity: int


def _visible(principal: Principal) -> Any:
    """The sites `principal` may read: a hospital its own, a platform admin every one."""
    statement = select(SiteSupply)
    if principal.is_platform_admin:
        return statement
    if principal.org_kind == "hospital":
        return statement.where(SiteSupply.hospital_org_id == principal.org_id)
    raise Forbidden("Oxygen runways are for hospitals and platform admins.")


async def get_runway(
    session: AsyncSession, principal: Principal, site_id: uuid.UUID, *, now: datetime
) -> RunwayOut:
    site = await session.scalar(_visible(principal).where(SiteSupply.site_id == site_id))
    if site is None:
        raise SupplyNotReported()
    return (await _runways(session, [site], now=now))[0]


async def list_runways(
    session: AsyncSession, principal: Principal, pagination: PageParams, *, now: datetime
) -> tuple[list[RunwayOut], int]:
    """The sites `principal` may read, soonest to run out first (those already out
    first of all, those that use nothing last).

    The page's ids come from the index alone (an OFFSET that skips thousands of sites
    reads no rows for them), then only those rows are read; an admin's total is the
    count a trigger keeps (models.SiteSupplyCount)."""
    visible_ids = _visible(principal).with_only_columns(SiteSupply.site_id)
    page_ids = (
        await session.scalars(
            visible_ids.order_by(SiteSupply.runs_out_at.asc().nulls_last(), SiteSupply.site_id)
            .limit(pagination.page_size)
            .offset(pagination.offset)
        )
    ).all()
    if principal.is_platform_admin:  # every site: the trigger-kept count, not a scan
        total = await session.scalar(select(SiteSupplyCount.sites))
    else:
        total = await session.scalar(select(func.count()).select_from(visible_ids.subquery()))
    rows = await session.scalars(select(SiteSupply).where(SiteSupply.site_id.in_(page_ids)))
    by_id = {site.site_id: site for site in rows}
    sites = [by_id[site_id] for site_id in page_ids if site_id in by_id]
    return await _runways(session, sites, now=now), total or 0


async def runway_of(session: AsyncSession, site: SiteSupply, *, now: datetime) -> RunwayOut:
    return (await _runways(session, [site], now=now))[0]


async def _runways(
    session: AsyncSession, sites: Sequence[SiteSupply], *, now: datetime
) -> list[RunwayOut]:
    """The runways of `sites` at `now`, with their inbound and auto-reorders: one query
    for the orders of all of them, one for their products' gas, one for the requests."""
    inbound = await _inbound(session, [site.site_id for site in sites])
    gas = await _gas_per_unit(
        session,
        {line.product_id for lines in inbound.values() for line in lines},
        known=False,
    )
    site_ids = [site.site_id for site in sites]
    requests = await auto_reorder.shown(session, site_ids, now=now)
    return [
        _runway(site, inbound.get(site.site_id, []), requests.get(site.site_id, []), gas, now)
        for site in sites
    ]


async def _inbound(
    session: AsyncSession, site_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[_InboundLine]]:
    if not site_ids:
        return {}
    orders = await session.scalars(
        select(SupplyOrder)
        .where(SupplyOrder.site_id.in_(site_ids), SupplyOrder.status.in_(OPEN_STATUSES))
        .order_by(SupplyOrder.eta.asc().nulls_last(), SupplyOrder.order_id)
    )
    by_site: dict[uuid.UUID, list[_InboundLine]] = {}
    for order in orders:
        for item in order.items:
            by_site.setdefault(order.site_id, []).append(
                _InboundLine(order, uuid.UUID(item["product_id"]), int(item["quantity"]))
            )
    return by_site


def _runway(
    site: SiteSupply,
    inbound: Sequence[_InboundLine],
    requests: Sequence[AutoReorder],
    gas: dict[uuid.UUID, Decimal | None],
    now: datetime,
) -> RunwayOut:
    state = _state(site)
    hours = runway.hours_left(state, now)
    # Only the site's own hospital's orders, and only those with an ETA, are on their way
    # at a known time.
    mine = [line for line in inbound if line.order.hospital_org_id == site.hospital_org_id]
    arriving = [
        InboundOrder(
            order_id=line.order.order_id,
            product_id=line.product_id,
            quantity=line.quantity,
            eta=line.order.eta,
            gas_liters_per_unit=gas.get(line.product_id),
        )
        for line in mine
        if line.order.eta is not None
    ]
    with_inbound = runway.hours_left_with_inbound(state, now, arriving)
    return RunwayOut(
        site_id=site.site_id,
        site_name=site.site_name,
        hospital_org_id=site.hospital_org_id,
        gas_liters=float(runway.remaining(state, now)),
        consumption_lpm=float(state.consumption_lpm),
        hours_left=None if hours is None else float(_shown(hours)),
        runs_out_at=site.runs_out_at,
        inbound=[
            InboundOut(
                order_id=line.order.order_id,
                product_id=line.product_id,
                quantity=line.quantity,
                status=line.order.status,
                eta=line.order.eta,
            )
            for line in mine
        ],
        hours_left_with_inbound=None if with_inbound is None else float(_shown(with_inbound)),
        level=runway.level(hours, alert_hours=site.alert_hours, critical_hours=site.critical_hours),
        alert_hours=float(site.alert_hours),
        critical_hours=float(site.critical_hours),
        auto_reorder=(
            None
            if site.auto_reorder_product_id is None
            else AutoReorderOut(
                product_id=site.auto_reorder_product_id,
                quantity=site.auto_reorder_quantity or 0,
                priority=site.auto_reorder_priority or "",
            )
        ),
        auto_reorders=[AutoReorderRequestOut.model_validate(request) for request in requests],
        reported_at=site.reported_at,
        as_of=now,
    )
