"""Events notification-service consumes: who hears what (SPEC "Notifications").

| heard by                                 | events                                          |
| vendor org (data.vendor_id)              | order.placed, order.cancelled, inventory.low_stock |
| the org itself (data.org_id)             | organization.verified (hospitals and vendors)   |
| the org's org admins (data.org_id; the   | organization.license_expiring                   |
|   e-mail goes to its org_admins only)    |                                                 |
| hospital org (data.hospital_org_id)      | order.confirmed, order.rejected, order.dispatched, |
|                                          | order.delivered, order.expired, payment.failed  |

The recipient is always read from the event, never inferred. `user.registered` keeps
the member projection (the e-mail recipients of each organisation).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.events.consumer import EventHandler
from flow_shared.events.envelope import EventEnvelope
from notification_service import service
from notification_service.config import Settings
from notification_service.models import Notification

USER_REGISTERED = "user.registered"

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


D = TypeVar("D", bound=_EventData)


@dataclass(frozen=True, slots=True)
class Heard:
    """Who hears an event, and what they read."""

    org_id: uuid.UUID
    title: str
    body: str


@dataclass(frozen=True, slots=True)
class Recipe(Generic[D]):
    model: type[D]
    render: Callable[[D], Heard]
    # Only members with one of these roles get the e-mail (None: every member).
    email_roles: frozenset[str] | None = None

    def apply(self, data: dict[str, Any]) -> Heard:
        return self.render(self.model.model_validate(data))


def _amount(total: str | None, currency: str | None) -> str:
    return " ".join(part for part in (total, currency) if part)


def _because(reason: str | None) -> str:
    return f": {reason}" if reason else "."


def _order_placed(e: OrderEvent) -> Heard:
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
    return Heard(
        e.vendor_id,
        f"New order {short_id(e.order_id)}",
        f"Order {short_id(e.order_id)} placed: {lines or 'no items'}{extra}. "
        "Please confirm or reject it.",
    )


def _order_cancelled(e: OrderEvent) -> Heard:
    return Heard(
        e.vendor_id,
        f"Order {short_id(e.order_id)} cancelled",
        f"Order {short_id(e.order_id)} was cancelled by the hospital{_because(e.reason)}",
    )


def _low_stock(e: LowStockEvent) -> Heard:
    return Heard(
        e.vendor_id,
        f"Low stock: {e.sku}",
        f"{e.sku} at depot {short_id(e.depot_id)} is down to {e.available} available "
        f"(threshold {e.low_stock_threshold}).",
    )


def _organization_verified(e: OrganizationVerifiedEvent) -> Heard:
    can = "place orders" if e.kind == "hospital" else "receive orders"
    licence = (
        f" Your licence is recorded as valid until {e.license_expires_on.isoformat()}."
        if e.license_expires_on
        else ""
    )
    return Heard(
        e.org_id,
        "Your organisation is verified",
        f"{e.name} has been verified by Flow. You can now {can}.{licence}",
    )


def _license_expiring(e: LicenseExpiringEvent) -> Heard:
    days = "1 day" if e.days_left == 1 else f"{e.days_left} days"
    return Heard(
        e.org_id,
        f"Your licence expires in {days}",
        f"The licence of {e.name} is valid until {e.license_expires_on.isoformat()}. "
        "Renew it with the Flow platform team before then: on expiry the organisation is "
        "suspended and its users cannot log in.",
    )


def _order_confirmed(e: OrderEvent) -> Heard:
    eta = f", estimated arrival in {e.eta_minutes} minutes" if e.eta_minutes is not None else ""
    return Heard(
        e.hospital_org_id,
        f"Order {short_id(e.order_id)} confirmed",
        f"Order {short_id(e.order_id)} was confirmed by the vendor{eta}.",
    )


def _order_rejected(e: OrderEvent) -> Heard:
    return Heard(
        e.hospital_org_id,
        f"Order {short_id(e.order_id)} rejected",
        f"Order {short_id(e.order_id)} was rejected by the vendor{_because(e.reason)}",
    )


def _order_dispatched(e: OrderEvent) -> Heard:
    return Heard(
        e.hospital_org_id,
        f"Order {short_id(e.order_id)} dispatched",
        f"Order {short_id(e.order_id)} is on its way.",
    )


def _order_delivered(e: OrderEvent) -> Heard:
    return Heard(
        e.hospital_org_id,
        f"Order {short_id(e.order_id)} delivered",
        f"Order {short_id(e.order_id)} was delivered.",
    )


def _order_expired(e: OrderEvent) -> Heard:
    return Heard(
        e.hospital_org_id,
        f"Order {short_id(e.order_id)} expired",
        f"Order {short_id(e.order_id)} expired: the vendor did not confirm it in time. "
        "Its stock hold was released; you can order again.",
    )


def _payment_failed(e: PaymentFailedEvent) -> Heard:
    amount = _amount(e.amount, e.currency)
    return Heard(
        e.hospital_org_id,
        f"Payment failed for order {short_id(e.order_id)}",
        f"The payment{f' of {amount}' if amount else ''} for order {short_id(e.order_id)} "
        f"failed{_because(e.reason)}",
    )


RECIPES: Mapping[str, Recipe[Any]] = {
    # vendor org
    "order.placed": Recipe(OrderEvent, _order_placed),
    "order.cancelled": Recipe(OrderEvent, _order_cancelled),
    "inventory.low_stock": Recipe(LowStockEvent, _low_stock),
    "organization.verified": Recipe(OrganizationVerifiedEvent, _organization_verified),
    # the org's admins
    "organization.license_expiring": Recipe(
        LicenseExpiringEvent, _license_expiring, email_roles=frozenset({"org_admin"})
    ),
    # hospital org
    "order.confirmed": Recipe(OrderEvent, _order_confirmed),
    "order.rejected": Recipe(OrderEvent, _order_rejected),
    "order.dispatched": Recipe(OrderEvent, _order_dispatched),
    "order.delivered": Recipe(OrderEvent, _order_delivered),
    "order.expired": Recipe(OrderEvent, _order_expired),
    "payment.failed": Recipe(PaymentFailedEvent, _payment_failed),
}


async def notify(
    session: AsyncSession, settings: Settings, envelope: EventEnvelope
) -> Notification | None:
    """The notification of one heard event (None if the event already has one)."""
    recipe = RECIPES[envelope.type]
    heard = recipe.apply(envelope.data)
    return await service.record_notification(
        session,
        settings,
        event_id=envelope.id,
        org_id=heard.org_id,
        event_type=envelope.type,
        title=heard.title,
        body=heard.body,
        data=public_data(envelope.data),
        email_roles=recipe.email_roles,
    )


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


def build_event_handlers(
    settings: Settings, on_recorded: Callable[[AsyncSession, Notification], None]
) -> dict[str, EventHandler]:
    """Handlers for the consumer. `on_recorded` is told of each new notification while its
    transaction is still open (to act once it commits: the live stream)."""

    async def handle_heard(session: AsyncSession, envelope: EventEnvelope) -> None:
        notification = await notify(session, settings, envelope)
        if notification is not None:
            on_recorded(session, notification)

    handlers: dict[str, EventHandler] = dict.fromkeys(RECIPES, handle_heard)
    handlers[USER_REGISTERED] = on_user_registered
    return handlers
