"""Events payment-service consumes: its order's course (order-service's order.* events),
and returned cylinders whose deposits it credits back (inventory-service's
cylinder.returned).

Each handler parses only the fields it needs and hands them to `service.lifecycle`,
inside the consumer's transaction (together with the inbox row). The provider is bound
when the app is built, since handlers receive only the session and the envelope.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.clock import utcnow
from flow_shared.events.consumer import EventHandlers
from flow_shared.events.envelope import EventEnvelope
from flow_shared.validation import CYLINDER_SERIAL_PATTERN
from payment_service.models import PaymentMethod
from payment_service.provider import PaymentProvider
from payment_service.service import deposits, lifecycle

ORDER_PLACED = "order.placed"
ORDER_DELIVERED = "order.delivered"
# Every way an order leaves the flow without being delivered.
ORDER_ENDED = ("order.cancelled", "order.rejected", "order.expired", "order.failed")
CYLINDER_RETURNED = "cylinder.returned"

EventMoney = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]


class OrderEventData(BaseModel):
    """The fields of order-service's order.* data that payments need."""

    model_config = ConfigDict(extra="ignore")

    order_id: uuid.UUID
    hospital_org_id: uuid.UUID
    vendor_id: uuid.UUID
    status: str = Field(max_length=20)
    payment_method: PaymentMethod
    total: EventMoney
    # The order's cylinder deposits, charged with `total` (absent from events written
    # before deposits existed).
    deposit_total: EventMoney = Decimal("0.00")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    # No card token: it comes over order-service's internal call, never in an event.
    reason: str | None = Field(default=None, max_length=1000)
    sos_id: uuid.UUID | None = None

    def facts(self) -> lifecycle.OrderFacts:
        return lifecycle.OrderFacts(
            order_id=self.order_id,
            hospital_org_id=self.hospital_org_id,
            vendor_id=self.vendor_id,
            method=self.payment_method,
            amount=self.total + self.deposit_total,
            deposit_amount=self.deposit_total,
            currency=self.currency,
            order_status=self.status,
            reason=self.reason,
            sos_id=self.sos_id,
        )


class CylinderReturnedData(BaseModel):
    """The fields of inventory-service's cylinder.returned data that payments need."""

    model_config = ConfigDict(extra="ignore")

    return_id: uuid.UUID
    serial: str = Field(pattern=CYLINDER_SERIAL_PATTERN)
    vendor_id: uuid.UUID
    hospital_org_id: uuid.UUID
    deposit_order_id: uuid.UUID | None = None
    deposit: EventMoney
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")

    def facts(self) -> deposits.CylinderReturn:
        return deposits.CylinderReturn(
            return_id=self.return_id,
            serial=self.serial,
            vendor_id=self.vendor_id,
            hospital_org_id=self.hospital_org_id,
            deposit_order_id=self.deposit_order_id,
            deposit=self.deposit,
            currency=self.currency,
        )


def _order(envelope: EventEnvelope) -> lifecycle.OrderFacts:
    return OrderEventData.model_validate(envelope.data).facts()


def event_handlers(provider: PaymentProvider, *, invoice_due_days: int) -> EventHandlers:
    """What payment-service consumes: its orders' course, with the card provider bound.
    Each is handled at the payment's own `utcnow()`: an event retried after an outage is
    handled now, not then."""

    async def on_order_placed(session: AsyncSession, envelope: EventEnvelope) -> None:
        await lifecycle.on_order_placed(session, provider, _order(envelope), at=utcnow())

    async def on_order_delivered(session: AsyncSession, envelope: EventEnvelope) -> None:
        await lifecycle.on_order_delivered(
            session,
            provider,
            _order(envelope),
            at=utcnow(),
            invoice_due_days=invoice_due_days,
        )

    async def on_order_ended(session: AsyncSession, envelope: EventEnvelope) -> None:
        await lifecycle.on_order_ended(session, provider, _order(envelope), at=utcnow())

    async def on_cylinder_returned(session: AsyncSession, envelope: EventEnvelope) -> None:
        returned = CylinderReturnedData.model_validate(envelope.data).facts()
        await lifecycle.on_cylinder_returned(session, provider, returned, at=utcnow())

    return EventHandlers(
        {ORDER_PLACED: on_order_placed, ORDER_DELIVERED: on_order_delivered},
        dict.fromkeys(ORDER_ENDED, on_order_ended),
        {CYLINDER_RETURNED: on_cylinder_returned},
    )
