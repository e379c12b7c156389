"""The projection of every domain event that stats and audit read.

admin-service consumes every event of SPEC's Events list (plus `order.failed`). Each
one is handled in the consumer's transaction, together with its inbox row, so a
redelivered event is never counted twice:
- it is kept in `events` (the audit), with secrets such as card tokens redacted;
- order events move `order_facts` forward — events may arrive out of order, so an
  order never goes back to an earlier status and each milestone keeps its own time;
- user.registered and organization.* keep `org_facts` (kind, verified, suspended);
  organization.license_expiring is audited only;
- sos.opened / .fulfilled / .unfilled / .cancelled keep `sos_facts` (open_sos); the
  other sos.* events are audited only. admin-service's own shortage.* events are audited
  as it writes them (shortages.py), not consumed;
- supply.runway_low / .runway_critical (inventory-service's oxygen runway),
  cylinder.returned (its cylinder ledger) and payment.deposit_credited (the deposit a
  return credits) are audited only.

Each producer owns its event's `data`; the models here read only the fields needed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, and_, bindparam, case, func, or_, tuple_
from sqlalchemy.dialects.postgresql import Insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from admin_service.models import AuditEvent, OrderFact, OrgFact, SosFact
from flow_shared.events.consumer import EventHandlers
from flow_shared.events.envelope import EventEnvelope

USER_REGISTERED = "user.registered"
ORGANIZATION_VERIFIED = "organization.verified"
ORGANIZATION_SUSPENDED = "organization.suspended"
ORGANIZATION_REINSTATED = "organization.reinstated"
ORGANIZATION_LICENSE_EXPIRING = "organization.license_expiring"
ORDER_EVENT_PREFIX = "order."
# Written by admin-service itself (admin_service.shortages); audited as they are written.
SHORTAGE_DECLARED = "shortage.declared"
SHORTAGE_ENDED = "shortage.ended"
# order-service's SOS events: open_sos counts opened minus fulfilled, unfilled, cancelled.
SOS_OPENED = "sos.opened"
SOS_FULFILLED = "sos.fulfilled"
SOS_UNFILLED = "sos.unfilled"
SOS_CANCELLED = "sos.cancelled"
SOS_AUDITED_ONLY = ("sos.request", "sos.escalated", "sos.closed")
# inventory-service's oxygen runway crossings: who ran low, and when, is the audit's.
RUNWAY_AUDITED_ONLY = ("supply.runway_low", "supply.runway_critical")
# The cylinder ledger: which empties came back, and the deposits that credited.
CYLINDER_AUDITED_ONLY = ("cylinder.returned", "payment.deposit_credited")

# How far along its life an order is. Every order follows one path of the order state
# machine (placed -> confirmed -> dispatched -> delivered, or an end state on the way),
# so a higher rank always happened later, whatever order the events arrive in.
ORDER_STATUS_RANK: Mapping[str, int] = {
    "placed": 1,
    "confirmed": 2,
    "dispatched": 3,
    "delivered": 4,
    "rejected": 4,
    "cancelled": 4,
    "expired": 4,
    "failed": 4,
}
ORDER_STATUSES = tuple(ORDER_STATUS_RANK)
OPEN_ORDER_STATUSES = ("placed", "confirmed", "dispatched")
ORDER_EVENT_TYPES = tuple(ORDER_EVENT_PREFIX + status for status in ORDER_STATUSES)

# SPEC's Events list and order.failed: admin hears everything.
ALL_EVENT_TYPES: tuple[str, ...] = (
    USER_REGISTERED,
    ORGANIZATION_VERIFIED,
    ORGANIZATION_SUSPENDED,
    ORGANIZATION_REINSTATED,
    ORGANIZATION_LICENSE_EXPIRING,
    "inventory.stock_changed",
    "inventory.low_stock",
    "inventory.reservation_expired",
    *ORDER_EVENT_TYPES,
    "payment.authorized",
    "payment.failed",
    "payment.captured",
    "payment.refunded",
    "review.created",
    SOS_OPENED,
    SOS_FULFILLED,
    SOS_UNFILLED,
    SOS_CANCELLED,
    *SOS_AUDITED_ONLY,
    *RUNWAY_AUDITED_ONLY,
    *CYLINDER_AUDITED_ONLY,
)

# Payment provider tokens can charge a card: the audit shows that one was sent, not it.
REDACTED_FIELDS = frozenset({"card_token"})
REDACTED = "[redacted]"

Money = Annotated[Decimal, Field(max_digits=14, decimal_places=2)]


class OrderEventData(BaseModel):
    """The fields of order-service's order.* data that the order facts need."""

    model_config = ConfigDict(extra="ignore")

    order_id: uuid.UUID
    hospital_org_id: uuid.UUID
    vendor_id: uuid.UUID
    priority: str = Field(max_length=20)
    total: Money
    currency: str = Field(min_length=3, max_length=3)
    at: datetime | None = None


class SosEventData(BaseModel):
    model_config = ConfigDict(extra="ignore")

    sos_id: uuid.UUID
    hospital_org_id: uuid.UUID


class UserRegisteredData(BaseModel):
    model_config = ConfigDict(extra="ignore")

    org_id: uuid.UUID
    org_kind: str = Field(max_length=20)
    org_name: str
    org_verified: bool


class OrganizationEventData(BaseModel):
    model_config = ConfigDict(extra="ignore")

    org_id: uuid.UUID
    kind: str = Field(max_length=20)
    name: str


async def project_event(session: AsyncSession, envelope: EventEnvelope) -> None:
    """The one handler of every event type (the consumer binds one key per type)."""
    if not await _record_event(session, envelope):
        # Already projected (the same event id arrived again): no second effect.
        return
    projector = _PROJECTORS.get(envelope.type)
    if projector is not None:
        await projector(session, envelope)


def event_handlers() -> EventHandlers:
    """What admin-service consumes: every event type, each to the one projection."""
    return EventHandlers(dict.fromkeys(ALL_EVENT_TYPES, project_event))


def _audit_insert() -> ReturningInsert[tuple[uuid.UUID]]:
    columns = ("event_id", "type", "producer", "occurred_at", "correlation_id", "data")
    return (
        pg_insert(AuditEvent)
        .values({name: bindparam(name) for name in columns})
        .on_conflict_do_nothing(index_elements=[AuditEvent.event_id])
        .returning(AuditEvent.event_id)
    )


# Built once: constructing these statements cost about a millisecond of CPU per event,
# more than running them (bench/README.md); executions only bind new values.
_AUDIT_INSERT = _audit_insert()


async def record_own_event(session: AsyncSession, envelope: EventEnvelope) -> None:
    """Audit an event admin-service writes itself, in the transaction that writes it (it
    does not consume its own events)."""
    await _record_event(session, envelope)


async def _record_event(session: AsyncSession, envelope: EventEnvelope) -> bool:
    inserted = await session.scalar(
        _AUDIT_INSERT,
        {
            "event_id": envelope.id,
            "type": envelope.type,
            "producer": envelope.producer[:100],
            "occurred_at": _utc(envelope.occurred_at),
            "correlation_id": envelope.correlation_id[:128] if envelope.correlation_id else None,
            "data": redact(envelope.data),
        },
    )
    return inserted is not None


def redact(value: Any) -> Any:
    """A copy of `value` with every REDACTED_FIELDS entry, at any depth, masked."""
    if isinstance(value, dict):
        return {
            key: REDACTED if key in REDACTED_FIELDS else redact(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def status_rank(status: ColumnElement[str]) -> ColumnElement[int]:
    return case(dict(ORDER_STATUS_RANK), value=status, else_=0)


def _order_fact_upsert() -> Insert:
    columns = OrderFact.__table__.c
    row = pg_insert(OrderFact).values({column.name: bindparam(column.name) for column in columns})
    current, new = columns, row.excluded
    # Only a later step of the order's life replaces its status; an earlier one that
    # arrives late only fills in its own milestone time.
    moves_forward = tuple_(status_rank(new.status), new.updated_at) > tuple_(
        status_rank(current.status), current.updated_at
    )
    return row.on_conflict_do_update(
        index_elements=[current.order_id],
        set_={
            "status": case((moves_forward, new.status), else_=current.status),
            "updated_at": case((moves_forward, new.updated_at), else_=current.updated_at),
            # LEAST skips NULLs: a milestone keeps the first time it was reached.
            "placed_at": func.least(current.placed_at, new.placed_at),
            "confirmed_at": func.least(current.confirmed_at, new.confirmed_at),
            "delivered_at": func.least(current.delivered_at, new.delivered_at),
        },
    )


_ORDER_FACT_UPSERT = _order_fact_upsert()


async def _project_order(session: AsyncSession, envelope: EventEnvelope) -> None:
    status = envelope.type.removeprefix(ORDER_EVENT_PREFIX)
    data = OrderEventData.model_validate(envelope.data)
    # `at` is when the order changed; the envelope's time is only a fallback.
    at = _utc(data.at or envelope.occurred_at)
    await session.execute(
        _ORDER_FACT_UPSERT,
        {
            "order_id": data.order_id,
            "hospital_org_id": data.hospital_org_id,
            "vendor_id": data.vendor_id,
            "status": status,
            "priority": data.priority,
            "total": data.total,
            "currency": data.currency.upper(),
            "placed_at": at if status == "placed" else None,
            "confirmed_at": at if status == "confirmed" else None,
            "delivered_at": at if status == "delivered" else None,
            "updated_at": at,
        },
    )


@dataclass(frozen=True, slots=True)
class _OrgFlags:
    """What an event says of an organisation's flags; `suspended` None: nothing about
    suspension (a new row starts not suspended)."""

    verified: bool
    suspended: bool | None


_ORGANIZATION_FLAGS: Mapping[str, _OrgFlags] = {
    ORGANIZATION_VERIFIED: _OrgFlags(verified=True, suspended=None),
    ORGANIZATION_SUSPENDED: _OrgFlags(verified=False, suspended=True),
    ORGANIZATION_REINSTATED: _OrgFlags(verified=False, suspended=False),
}


async def _project_user_registered(session: AsyncSession, envelope: EventEnvelope) -> None:
    data = UserRegisteredData.model_validate(envelope.data)
    organization = OrganizationEventData(org_id=data.org_id, kind=data.org_kind, name=data.org_name)
    flags = _OrgFlags(verified=data.org_verified, suspended=None)
    await _upsert_org(session, envelope, organization, flags)


async def _project_organization(session: AsyncSession, envelope: EventEnvelope) -> None:
    organization = OrganizationEventData.model_validate(envelope.data)
    await _upsert_org(session, envelope, organization, _ORGANIZATION_FLAGS[envelope.type])


async def _upsert_org(
    session: AsyncSession,
    envelope: EventEnvelope,
    organization: OrganizationEventData,
    flags: _OrgFlags,
) -> None:
    at = _utc(envelope.occurred_at)
    row = pg_insert(OrgFact).values(
        org_id=organization.org_id,
        kind=organization.kind,
        name=organization.name[:200],
        verified=flags.verified,
        suspended=bool(flags.suspended),
        suspension_changed_at=at if flags.suspended is not None else None,
        updated_at=at,
    )
    current, new = OrgFact.__table__.c, row.excluded
    # `verified` never turns off upstream, so OR-ing converges whatever the delivery
    # order. `suspended` does (a reinstatement): the latest suspend or reinstate event
    # wins, by when it happened. The name comes from the newest event.
    latest_suspension_news = and_(
        new.suspension_changed_at.is_not(None),
        or_(
            current.suspension_changed_at.is_(None),
            new.suspension_changed_at >= current.suspension_changed_at,
        ),
    )
    await session.execute(
        row.on_conflict_do_update(
            index_elements=[current.org_id],
            set_={
                "verified": current.verified | new.verified,
                "suspended": case((latest_suspension_news, new.suspended), else_=current.suspended),
                "suspension_changed_at": func.greatest(
                    current.suspension_changed_at, new.suspension_changed_at
                ),
                "name": case((new.updated_at >= current.updated_at, new.name), else_=current.name),
                "updated_at": func.greatest(current.updated_at, new.updated_at),
            },
        )
    )


_SOS_CLOSING = {SOS_FULFILLED: "fulfilled", SOS_UNFILLED: "unfilled", SOS_CANCELLED: "cancelled"}


async def _project_sos(session: AsyncSession, envelope: EventEnvelope) -> None:
    """An SOS is open from sos.opened until one closing event; a closing event that arrives
    first wins over the late sos.opened (the row is never reopened)."""
    data = SosEventData.model_validate(envelope.data)
    status = _SOS_CLOSING.get(envelope.type, "open")
    row = pg_insert(SosFact).values(
        sos_id=data.sos_id,
        hospital_org_id=data.hospital_org_id,
        status=status,
        updated_at=_utc(envelope.occurred_at),
    )
    if status == "open":
        await session.execute(row.on_conflict_do_nothing(index_elements=[SosFact.sos_id]))
        return
    await session.execute(
        row.on_conflict_do_update(
            index_elements=[SosFact.sos_id],
            set_={"status": row.excluded.status, "updated_at": row.excluded.updated_at},
            where=SosFact.status == "open",
        )
    )


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


_PROJECTORS: Mapping[str, Callable[[AsyncSession, EventEnvelope], Awaitable[None]]] = {
    **dict.fromkeys(ORDER_EVENT_TYPES, _project_order),
    USER_REGISTERED: _project_user_registered,
    **dict.fromkeys(_ORGANIZATION_FLAGS, _project_organization),
    **dict.fromkeys((SOS_OPENED, *_SOS_CLOSING), _project_sos),
}
