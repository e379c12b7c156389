"""Events notification-service consumes: who hears what (SPEC "Notifications", "Who
hears what (added)").

| heard by                                 | events                                          |
| vendor org (data.vendor_id)              | order.placed, order.cancelled, inventory.low_stock |
| the org itself (data.org_id)             | organization.verified (hospitals and vendors)   |
| the org's org admins only (data.org_id)  | organization.license_expiring                   |
| hospital org (data.hospital_org_id)      | order.confirmed, order.rejected, order.dispatched, |
|                                          | order.delivered, order.expired, payment.failed, |
|                                          | sos.escalated, sos.fulfilled, sos.unfilled,     |
|                                          | supply.runway_low, supply.runway_critical       |
| every vendor in data.offers              | sos.request (one per ring)                      |
| every vendor in data.vendor_ids          | sos.closed                                      |
| every org in data.recipient_org_ids      | shortage.declared, shortage.ended               |
| the platform admins                      | sos.unfilled                                    |

The recipient is always read from the event, never inferred; one event may notify
several organisations, each once (the notification is unique per event and recipient).
Each recipient's `data` holds what it may see: a vendor hearing an SOS sees its own
offers, never its competitors'; nobody sees the list of who else was told.
`sos.opened` (ring 1 is announced by its own sos.request) and `sos.cancelled` (the
vendors hear sos.closed) notify nobody, so they are not consumed. `user.registered`
keeps the member projection (the e-mail recipients of each organisation, with roles).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Generic, TypeVar

import structlog
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.events.consumer import EventHandlers
from flow_shared.events.envelope import EventEnvelope
from notification_service import service
from notification_service.audience import PLATFORM_ADMIN_ROLE, Audience, PlatformAdmins, Recipient
from notification_service.config import Settings
from notification_service.models import Notification

USER_REGISTERED = "user.registered"

log = structlog.get_logger("notifications.events")

# Keys never copied into a notification's data (it is shown to users and sent to webhooks).
SECRET_KEYS = frozenset(
    {"card_token", "card_number", "cvc", "cvv", "password", "secret", "token", "provider_token"}
)
SECRET_SUFFIXES = ("_token", "_secret", "_password")


def public_data(value: Any) -> Any:
    """The event data without anything secret (card tokens and the like), at any depth."""
    if isinstance(value, dict):
        return {
            key: public_data(item) for key, item in value.items() if not _is_secret_key(str(key))
        }
    if isinstance(value, list):
        return [public_data(item) for item in value]
    return value


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return lowered in SECRET_KEYS or lowered.endswith(SECRET_SUFFIXES)


def short_id(value: uuid.UUID) -> str:
    return f"{value.hex[:8]}…"


# --- the fields each event family needs ---------------------------------------------------


class _EventData(BaseModel):
    model_config = ConfigDict(extra="ignore")


class OrderItem(_EventData):
    product_id: uuid.UUID
    quantity: int


class OrderEvent(_EventData):
    order_id: uuid.UUID
    hospital_org_id: uuid.UUID
    vendor_id: uuid.UUID
    priority: str | None = None
    payment_method: str | None = None
    total: str | None = None
    currency: str | None = None
    items: list[OrderItem] = Field(default_factory=list)
    reason: str | None = None
    eta_minutes: int | None = None


class LowStockEvent(_EventData):
    depot_id: uuid.UUID
    vendor_id: uuid.UUID
    sku: str
    available: int
    low_stock_threshold: int


class OrganizationVerifiedEvent(_EventData):
    org_id: uuid.UUID
    name: str
    kind: str | None = None
    license_expires_on: date | None = None


class LicenseExpiringEvent(_EventData):
    org_id: uuid.UUID
    name: str
    license_expires_on: date
    days_left: int


class PaymentFailedEvent(_EventData):
    order_id: uuid.UUID
    hospital_org_id: uuid.UUID
    amount: str | None = None
    currency: str | None = None
    reason: str | None = None


class SosDelivery(_EventData):
    lat: float
    lon: float
    address: str | None = None


class SosOffer(_EventData):
    vendor_id: uuid.UUID
    depot_id: uuid.UUID
    distance_km: float
    eta_min: int | None = None


class SosRequestEvent(_EventData):
    sos_id: uuid.UUID
    hospital_org_id: uuid.UUID
    product_id: uuid.UUID
    quantity: int
    delivery: SosDelivery | None = None
    ring_number: int
    expires_at: datetime
    offers: list[SosOffer] = Field(default_factory=list)


class SosEscalatedEvent(_EventData):
    sos_id: uuid.UUID
    hospital_org_id: uuid.UUID
    from_ring: int
    to_ring: int
    reason: str | None = None


class SosFulfilledEvent(_EventData):
    sos_id: uuid.UUID
    hospital_org_id: uuid.UUID
    order_id: uuid.UUID
    vendor_id: uuid.UUID
    depot_id: uuid.UUID | None = None
    eta_minutes: int | None = None


class SosClosedEvent(_EventData):
    sos_id: uuid.UUID
    hospital_org_id: uuid.UUID
    vendor_ids: list[uuid.UUID] = Field(default_factory=list)
    reason: str | None = None


class SosUnfilledEvent(_EventData):
    sos_id: uuid.UUID
    hospital_org_id: uuid.UUID
    product_id: uuid.UUID
    quantity: int
    rings_tried: int | None = None


class ShortageArea(_EventData):
    lat: float
    lon: float
    radius_km: float


class ShortageEvent(_EventData):
    """shortage.declared and shortage.ended."""

    shortage_id: uuid.UUID
    area: ShortageArea
    categories: list[str] = Field(default_factory=list)
    note: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: uuid.UUID | None = None
    recipient_org_ids: list[uuid.UUID] = Field(default_factory=list)


class RunwayEvent(_EventData):
    """supply.runway_low and supply.runway_critical (inventory-service's oxygen runway)."""

    site_id: uuid.UUID
    hospital_org_id: uuid.UUID
    site_name: str | None = None
    level: str
    # Numbers may come as decimal strings (flow_shared.json_codec): read as floats.
    hours_left: float
    # Always set on a crossing (something is consumed); optional so that text never fails.
    runs_out_at: datetime | None = None
    gas_liters: float
    consumption_lpm: float
    alert_hours: float
    critical_hours: float
    as_of: datetime


D = TypeVar("D", bound=_EventData)


@dataclass(frozen=True, slots=True)
class NotificationDraft:
    """Who hears an event, and what they read: one recipient's notification, before it is
    recorded for each audience the recipient stands for."""

    to: Recipient
    title: str
    body: str
    # What this recipient's notification carries (None: the event's data, secrets removed).
    data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Recipe(Generic[D]):
    model: type[D]
    # One event may be heard by several recipients, each reading its own text.
    render: Callable[[D], NotificationDraft | Sequence[NotificationDraft]]

    def apply(self, data: dict[str, Any]) -> list[NotificationDraft]:
        rendered = self.render(self.model.model_validate(data))
        return [rendered] if isinstance(rendered, NotificationDraft) else list(rendered)


def _amount(total: str | None, currency: str | None) -> str:
    return " ".join(part for part in (total, currency) if part)


def _because(reason: str | None) -> str:
    return f": {reason}" if reason else "."


def _order_placed(e: OrderEvent) -> NotificationDraft:
    # Events carry product ids, not names.
    lines = ", ".join(
        f"{i.quantity} \N{MULTIPLICATION SIGN} product {short_id(i.product_id)}" for i in e.items
    )
    details = []
    if e.total:
        details.append(f"total {_amount(e.total, e.currency)}")
    if e.priority:
        details.append(f"priority {e.priority}")
    if e.payment_method:
        details.append(f"payment {e.payment_method.replace('_', ' ')}")
    extra = f" ({'; '.join(details)})" if details else ""
    return NotificationDraft(
        Audience(e.vendor_id),
        f"New order {short_id(e.order_id)}",
        f"Order {short_id(e.order_id)} placed: {lines or 'no items'}{extra}. "
        "Please confirm or reject it.",
    )


def _order_cancelled(e: OrderEvent) -> NotificationDraft:
    return NotificationDraft(
        Audience(e.vendor_id),
        f"Order {short_id(e.order_id)} cancelled",
        f"Order {short_id(e.order_id)} was cancelled by the hospital{_because(e.reason)}",
    )


def _low_stock(e: LowStockEvent) -> NotificationDraft:
    return NotificationDraft(
        Audience(e.vendor_id),
        f"Low stock: {e.sku}",
        f"{e.sku} at depot {short_id(e.depot_id)} is down to {e.available} available "
        f"(threshold {e.low_stock_threshold}).",
    )


def _organization_verified(e: OrganizationVerifiedEvent) -> NotificationDraft:
    can = "place orders" if e.kind == "hospital" else "receive orders"
    licence = (
        f" Your licence is recorded as valid until {e.license_expires_on.isoformat()}."
        if e.license_expires_on
        else ""
    )
    return NotificationDraft(
        Audience(e.org_id),
        "Your organisation is verified",
        f"{e.name} has been verified by Flow. You can now {can}.{licence}",
    )


def _license_expiring(e: LicenseExpiringEvent) -> NotificationDraft:
    days = "1 day" if e.days_left == 1 else f"{e.days_left} days"
    return NotificationDraft(
        # The licence is the org admins' business: staff do not see it (list, stream, mail).
        Audience(e.org_id, role="org_admin"),
        f"Your licence expires in {days}",
        f"The licence of {e.name} is valid until {e.license_expires_on.isoformat()}. "
        "Renew it with the Flow platform team before then: on expiry the organisation is "
        "suspended and its users cannot log in.",
    )


def _order_confirmed(e: OrderEvent) -> NotificationDraft:
    eta = f", estimated arrival in {e.eta_minutes} minutes" if e.eta_minutes is not None else ""
    return NotificationDraft(
        Audience(e.hospital_org_id),
        f"Order {short_id(e.order_id)} confirmed",
        f"Order {short_id(e.order_id)} was confirmed by the vendor{eta}.",
    )


def _order_rejected(e: OrderEvent) -> NotificationDraft:
    return NotificationDraft(
        Audience(e.hospital_org_id),
        f"Order {short_id(e.order_id)} rejected",
        f"Order {short_id(e.order_id)} was rejected by the vendor{_because(e.reason)}",
    )


def _order_dispatched(e: OrderEvent) -> NotificationDraft:
    return NotificationDraft(
        Audience(e.hospital_org_id),
        f"Order {short_id(e.order_id)} dispatched",
        f"Order {short_id(e.order_id)} is on its way.",
    )


def _order_delivered(e: OrderEvent) -> NotificationDraft:
    return NotificationDraft(
        Audience(e.hospital_org_id),
        f"Order {short_id(e.order_id)} delivered",
        f"Order {short_id(e.order_id)} was delivered.",
    )


def _order_expired(e: OrderEvent) -> NotificationDraft:
    return NotificationDraft(
        Audience(e.hospital_org_id),
        f"Order {short_id(e.order_id)} expired",
        f"Order {short_id(e.order_id)} expired: the vendor did not confirm it in time. "
        "Its stock hold was released; you can order again.",
    )


def _payment_failed(e: PaymentFailedEvent) -> NotificationDraft:
    amount = _amount(e.amount, e.currency)
    return NotificationDraft(
        Audience(e.hospital_org_id),
        f"Payment failed for order {short_id(e.order_id)}",
        f"The payment{f' of {amount}' if amount else ''} for order {short_id(e.order_id)} "
        f"failed{_because(e.reason)}",
    )


# --- shortage readiness: SOS and shortages (read at 3 a.m.: what, how much, how far, by when)


def _unique(ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    return list(dict.fromkeys(ids))


def _clock(at: datetime) -> str:
    """`10:42 UTC` (events carry UTC; the recipient's time zone is not known here)."""
    return f"{at.astimezone(UTC):%H:%M} UTC"


def _when(at: datetime) -> str:
    """`10:42 UTC on 7 Dec 2026`."""
    utc = at.astimezone(UTC)
    return f"{_clock(utc)} on {utc.day} {utc:%b %Y}"


def _km(value: float) -> str:
    return f"{value:.1f} km"


def _product(product_id: uuid.UUID) -> str:
    # Events carry product ids, not names: say what is there, invent nothing.
    return f"product {short_id(product_id)}"


def _rings(count: int | None) -> str:
    if count is None:
        return "every ring"
    return "1 ring" if count == 1 else f"{count} rings"


def _sos_request(e: SosRequestEvent) -> list[NotificationDraft]:
    """Every vendor offered in this ring, each told of its own depot(s) only."""
    drafts = []
    for vendor_id in _unique([offer.vendor_id for offer in e.offers]):
        mine = sorted(
            (offer for offer in e.offers if offer.vendor_id == vendor_id),
            key=lambda offer: offer.distance_km,
        )
        nearest = mine[0]
        depots = "; ".join(
            f"depot {short_id(offer.depot_id)} is {_km(offer.distance_km)} away"
            + (f" (about {offer.eta_min} min)" if offer.eta_min is not None else "")
            for offer in mine
        )
        where = f" Deliver to: {e.delivery.address}." if e.delivery and e.delivery.address else ""
        drafts.append(
            NotificationDraft(
                Audience(vendor_id),
                f"SOS: {e.quantity} \N{MULTIPLICATION SIGN} {_product(e.product_id)} needed "
                f"{_km(nearest.distance_km)} away \N{EM DASH} answer by {_clock(e.expires_at)}",
                f"Emergency: hospital {short_id(e.hospital_org_id)} needs {e.quantity} "
                f"\N{MULTIPLICATION SIGN} {_product(e.product_id)} now. Your {depots}.{where} "
                f"Accept with your ETA or decline by {_when(e.expires_at)} (SOS "
                f"{short_id(e.sos_id)}, ring {e.ring_number}); the first vendor to accept "
                "gets the order, and unanswered it goes to the next nearest vendors.",
                data={
                    "sos_id": str(e.sos_id),
                    "hospital_org_id": str(e.hospital_org_id),
                    "product_id": str(e.product_id),
                    "quantity": e.quantity,
                    "delivery": e.delivery.model_dump(mode="json") if e.delivery else None,
                    "ring_number": e.ring_number,
                    "expires_at": e.expires_at.isoformat(),
                    # This vendor's offers only: who else was asked is not its business.
                    "offers": [offer.model_dump(mode="json") for offer in mine],
                },
            )
        )
    return drafts


_ESCALATED_BECAUSE = {
    "declined": "every vendor asked declined",
    "timed_out": "no vendor answered in time",
}


def _sos_escalated(e: SosEscalatedEvent) -> NotificationDraft:
    because = _ESCALATED_BECAUSE.get(e.reason or "", "it was not accepted")
    return NotificationDraft(
        Audience(e.hospital_org_id),
        f"SOS {short_id(e.sos_id)}: asking more vendors (ring {e.to_ring})",
        f"Ring {e.from_ring} of your SOS {short_id(e.sos_id)} ended: {because}. It has gone "
        f"to the next nearest vendors (ring {e.to_ring}). You will be told as soon as one "
        "accepts, or if none within range does.",
    )


def _sos_fulfilled(e: SosFulfilledEvent) -> NotificationDraft:
    eta = f": ETA {e.eta_minutes} min" if e.eta_minutes is not None else ""
    depot = f" from depot {short_id(e.depot_id)}" if e.depot_id is not None else ""
    arrival = f", estimated arrival in {e.eta_minutes} minutes" if e.eta_minutes is not None else ""
    return NotificationDraft(
        Audience(e.hospital_org_id),
        f"SOS fulfilled by vendor {short_id(e.vendor_id)}{eta}",
        f"Vendor {short_id(e.vendor_id)} accepted your SOS {short_id(e.sos_id)}{depot}. "
        f"Order {short_id(e.order_id)} is confirmed{arrival}.",
    )


def _sos_closed(e: SosClosedEvent) -> list[NotificationDraft]:
    """The vendors offered it (the winner is not among them), to stop preparing it."""
    sos = short_id(e.sos_id)
    if e.reason == "fulfilled":
        title = f"SOS {sos} closed: another vendor is supplying it"
        why = "was accepted by another vendor"
    elif e.reason == "cancelled":
        title = f"SOS {sos} cancelled by the hospital"
        why = "was cancelled by the hospital"
    elif e.reason == "unfilled":
        title = f"SOS {sos} closed"
        why = "closed without a supplier"
    else:
        title = f"SOS {sos} closed"
        why = "is closed"
    body = (
        f"The SOS {sos} of hospital {short_id(e.hospital_org_id)} {why}. It can no longer be "
        "accepted: do not send stock for it."
    )
    data = {
        "sos_id": str(e.sos_id),
        "hospital_org_id": str(e.hospital_org_id),
        "reason": e.reason,
    }
    return [
        NotificationDraft(Audience(vendor), title, body, data=data)
        for vendor in _unique(e.vendor_ids)
    ]


def _sos_unfilled(e: SosUnfilledEvent) -> list[NotificationDraft]:
    sos, wanted = (
        short_id(e.sos_id),
        f"{e.quantity} \N{MULTIPLICATION SIGN} {_product(e.product_id)}",
    )
    return [
        NotificationDraft(
            Audience(e.hospital_org_id),
            f"SOS {sos} unfilled: no vendor in range accepted",
            f"No vendor within range accepted your SOS {sos} for {wanted} after "
            f"{_rings(e.rings_tried)}. It is closed. Open a new SOS with a larger distance, "
            "or order from a vendor further away; the Flow platform team has been told.",
        ),
        NotificationDraft(
            PlatformAdmins(),
            f"SOS unfilled: hospital {short_id(e.hospital_org_id)} needs {wanted}",
            f"SOS {sos} of hospital {short_id(e.hospital_org_id)} for {wanted} found no "
            f"vendor after {_rings(e.rings_tried)} and is closed. The hospital has been told.",
        ),
    ]


# --- oxygen runway: read by a biomedical engineer deciding whether to order or open an SOS


def _minute(at: datetime) -> str:
    """`2026-12-08 14:30 UTC`."""
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _time_left(hours: float) -> str:
    if hours <= 0:
        return "none left"
    if hours < 1:
        return f"about {max(round(hours * 60), 1)} minutes left"
    return f"about {hours:.1f} hours left"


def _site(e: RunwayEvent) -> str:
    return e.site_name or f"site {short_id(e.site_id)}"


def _runway_title(e: RunwayEvent, alarm: str) -> str:
    title = f"{alarm} at {_site(e)}: {_time_left(e.hours_left)}"
    if e.runs_out_at is None:
        return title
    ran = "ran out" if e.hours_left <= 0 else "runs out"
    return f"{title} ({ran} {_minute(e.runs_out_at)})"


def _runway_stock(e: RunwayEvent) -> str:
    stock = (
        f"{_site(e)} has about {e.gas_liters:,.0f} L of oxygen on site, used at "
        f"{e.consumption_lpm:g} L/min (as of {_minute(e.as_of)})"
    )
    if e.runs_out_at is None:
        return f"{stock}."
    ran = "it ran out" if e.hours_left <= 0 else "at that rate it runs out"
    return f"{stock}: {ran} at {_minute(e.runs_out_at)}, not counting orders on their way."


def _runway_low(e: RunwayEvent) -> NotificationDraft:
    return NotificationDraft(
        Audience(e.hospital_org_id),
        _runway_title(e, "Oxygen low"),
        f"{_runway_stock(e)} That is under your alert level of {e.alert_hours:g} hours. "
        "Order oxygen now so it arrives in time.",
    )


def _runway_critical(e: RunwayEvent) -> NotificationDraft:
    return NotificationDraft(
        Audience(e.hospital_org_id),
        _runway_title(e, "Oxygen CRITICAL"),
        f"{_runway_stock(e)} That is under your critical level of {e.critical_hours:g} "
        "hours. Unless a delivery is due before then, open an SOS now: the nearest vendors "
        "with stock are asked at once.",
    )


def _shortage_data(e: ShortageEvent) -> dict[str, Any]:
    # Not the recipient list (who else is in the area) nor which admin acted.
    return {
        "shortage_id": str(e.shortage_id),
        "area": e.area.model_dump(mode="json"),
        "categories": e.categories,
        "note": e.note,
        "starts_at": e.starts_at.isoformat() if e.starts_at else None,
        "ends_at": e.ends_at.isoformat() if e.ends_at else None,
        "ended_at": e.ended_at.isoformat() if e.ended_at else None,
    }


def _area(e: ShortageEvent) -> str:
    return f"within {_km(e.area.radius_km)} of ({e.area.lat:.4f}, {e.area.lon:.4f})"


def _shortage_declared(e: ShortageEvent) -> list[NotificationDraft]:
    categories = ", ".join(e.categories) or "oxygen"
    until = f"until {_when(e.ends_at)}" if e.ends_at else "until it is ended"
    since = f"from {_when(e.starts_at)} " if e.starts_at else ""
    note = f" Note from Flow: {e.note}" if e.note else ""
    title = f"Shortage declared around you: {categories} routine orders paused"
    body = (
        f"A shortage of {categories} is declared {_area(e)}, {since}{until}. Routine orders "
        f"of {categories} there are paused; urgent, emergency and SOS orders go on, with "
        f"tighter allocation caps and shorter holds on unconfirmed orders.{note}"
    )
    data = _shortage_data(e)
    return [
        NotificationDraft(Audience(org), title, body, data=data)
        for org in _unique(e.recipient_org_ids)
    ]


def _shortage_ended(e: ShortageEvent) -> list[NotificationDraft]:
    """Told to the same organisations, so nobody keeps holding back routine orders."""
    categories = ", ".join(e.categories) or "oxygen"
    ended = f" at {_when(e.ended_at)}" if e.ended_at else ""
    how = "ended by the Flow platform team" if e.ended_by else "over: its end time passed"
    title = f"Shortage over: {categories} routine orders resume"
    body = (
        f"The shortage of {categories} {_area(e)} is {how}{ended}. Routine orders of "
        f"{categories} are taken again, with the usual allocation caps and holds."
    )
    data = _shortage_data(e)
    return [
        NotificationDraft(Audience(org), title, body, data=data)
        for org in _unique(e.recipient_org_ids)
    ]


RECIPES: Mapping[str, Recipe[Any]] = {
    # vendor org
    "order.placed": Recipe(OrderEvent, _order_placed),
    "order.cancelled": Recipe(OrderEvent, _order_cancelled),
    "inventory.low_stock": Recipe(LowStockEvent, _low_stock),
    "organization.verified": Recipe(OrganizationVerifiedEvent, _organization_verified),
    # the org's admins
    "organization.license_expiring": Recipe(LicenseExpiringEvent, _license_expiring),
    # hospital org
    "order.confirmed": Recipe(OrderEvent, _order_confirmed),
    "order.rejected": Recipe(OrderEvent, _order_rejected),
    "order.dispatched": Recipe(OrderEvent, _order_dispatched),
    "order.delivered": Recipe(OrderEvent, _order_delivered),
    "order.expired": Recipe(OrderEvent, _order_expired),
    "payment.failed": Recipe(PaymentFailedEvent, _payment_failed),
    "sos.escalated": Recipe(SosEscalatedEvent, _sos_escalated),
    "sos.fulfilled": Recipe(SosFulfilledEvent, _sos_fulfilled),
    "supply.runway_low": Recipe(RunwayEvent, _runway_low),
    "supply.runway_critical": Recipe(RunwayEvent, _runway_critical),
    # hospital org and the platform admins
    "sos.unfilled": Recipe(SosUnfilledEvent, _sos_unfilled),
    # every vendor named in the event
    "sos.request": Recipe(SosRequestEvent, _sos_request),
    "sos.closed": Recipe(SosClosedEvent, _sos_closed),
    # every organisation inside the area (hospitals and vendors)
    "shortage.declared": Recipe(ShortageEvent, _shortage_declared),
    "shortage.ended": Recipe(ShortageEvent, _shortage_ended),
}


async def audiences(session: AsyncSession, recipient: Recipient) -> list[Audience]:
    """The audiences a recipient stands for: itself, or the platform admins' org(s) with
    the platform_admin role (none while no platform admin is projected)."""
    if isinstance(recipient, Audience):
        return [recipient]
    return [
        Audience(org_id, role=PLATFORM_ADMIN_ROLE)
        for org_id in await service.platform_admin_orgs(session)
    ]


async def notify(
    session: AsyncSession, settings: Settings, envelope: EventEnvelope
) -> list[Notification]:
    """The new notifications of one heard event, one per recipient ([] for a redelivery:
    every recipient already has its own)."""
    drafts = RECIPES[envelope.type].apply(envelope.data)
    event_data = public_data(envelope.data)
    created = []
    for draft in drafts:
        for audience in await audiences(session, draft.to):
            notification = await service.record_notification(
                session,
                settings,
                event_id=envelope.id,
                audience=audience,
                event_type=envelope.type,
                title=draft.title,
                body=draft.body,
                data=public_data(draft.data) if draft.data is not None else event_data,
            )
            if notification is not None:
                created.append(notification)
    if not created and not drafts:
        log.info("event_heard_by_nobody", event_type=envelope.type, event_id=str(envelope.id))
    return created


class UserRegisteredEvent(_EventData):
    user_id: uuid.UUID
    org_id: uuid.UUID
    email: str
    full_name: str
    role: str | None = Field(default=None, max_length=20)


async def on_user_registered(session: AsyncSession, envelope: EventEnvelope) -> None:
    data = UserRegisteredEvent.model_validate(envelope.data)
    await service.upsert_member(
        session,
        user_id=data.user_id,
        org_id=data.org_id,
        email=data.email[:320],
        full_name=data.full_name[:200],
        role=data.role,
    )


def event_handlers(
    settings: Settings, on_recorded: Callable[[AsyncSession, Notification], None]
) -> EventHandlers:
    """What notification-service consumes: every heard event, and user.registered for the
    recipients' addresses. `on_recorded` is told of each new notification while its
    transaction is still open (to act once it commits: the live stream)."""

    async def handle_heard(session: AsyncSession, envelope: EventEnvelope) -> None:
        for notification in await notify(session, settings, envelope):
            on_recorded(session, notification)

    return EventHandlers(
        dict.fromkeys(RECIPES, handle_heard), {USER_REGISTERED: on_user_registered}
    )
