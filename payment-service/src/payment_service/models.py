"""Tables of payment-service, all in the "payments" schema.

- `payments`: one per order (UNIQUE order_id: a redelivered order.placed can never open a
  second one), its state, the money captured and refunded, and its `events` history.
- `invoices`: one per `invoice` payment, issued on delivery.
- `deposit_credits`: one per returned cylinder (UNIQUE return_id: a redelivered or
  concurrently handled cylinder.returned never credits twice), the deposit given back to
  the payment its order was charged on, pending until that payment is settled.
- `pending_card_tokens`: a card order's token, handed over by order-service over an
  authenticated internal call before the order (or its SOS request) is committed, until its
  order.placed takes it.
- `webhook_events`: every provider webhook handled, so a replay has no second effect.
- `sandbox_charges` / `sandbox_requests`: the built-in sandbox provider's own books (what
  a real provider keeps on its side), including its idempotency keys.
- the outbox, the inbox and the idempotency keys of `flow_shared`.

No card number is ever stored: a provider token (CHECKed to look like one) and the last four.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    Sequence,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from flow_shared.db import service_metadata
from flow_shared.events.outbox import define_inbox_table, define_outbox_table
from flow_shared.idempotency import define_idempotency_table

SCHEMA = "payments"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class PaymentStatus(StrEnum):
    PENDING = "pending"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    VOIDED = "voided"
    REFUNDED = "refunded"
    FAILED = "failed"


class PaymentMethod(StrEnum):
    CARD = "card"
    INVOICE = "invoice"
    CASH_ON_DELIVERY = "cash_on_delivery"


class InvoiceStatus(StrEnum):
    OPEN = "open"
    PAID = "paid"
    VOID = "void"


class DepositCreditStatus(StrEnum):
    PENDING = "pending"
    CREDITED = "credited"
    VOID = "void"


class DepositCreditKind(StrEnum):
    REFUND = "refund"
    INVOICE_CREDIT = "invoice_credit"


class SandboxChargeStatus(StrEnum):
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    VOIDED = "voided"
    REFUNDED = "refunded"


# A provider token, never a card number: the sandbox's `tok_visa` and the like.
TOKEN_PATTERN = r"^tok_[a-z0-9_]+$"  # noqa: S105 - a shape, not a secret


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


# Money: two decimals, Decimal end to end.
Amount = Numeric(14, 2)


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(_in("status", tuple(PaymentStatus)), name="status"),
        CheckConstraint(_in("method", tuple(PaymentMethod)), name="method"),
        CheckConstraint("amount >= 0", name="amount_non_negative"),
        CheckConstraint(
            "captured_amount >= 0 AND captured_amount <= amount", name="captured_within_amount"
        ),
        # The last word on refunds: however requests interleave, never more than captured.
        CheckConstraint(
            "refunded_amount >= 0 AND refunded_amount <= captured_amount",
            name="refunded_within_captured",
        ),
        # The cylinder deposits are part of the amount charged; never more given back.
        CheckConstraint(
            "deposit_amount >= 0 AND deposit_amount <= amount", name="deposit_within_amount"
        ),
        CheckConstraint(
            "deposit_credited >= 0 AND deposit_credited <= deposit_amount",
            name="deposit_credited_within_deposit",
        ),
        CheckConstraint(
            f"provider_token IS NULL OR provider_token ~ '{TOKEN_PATTERN}'", name="token"
        ),
        CheckConstraint("last4 IS NULL OR last4 ~ '^[0-9]{4}$'", name="last4"),
        Index("ix_payments_hospital_org_id_created_at", "hospital_org_id", "created_at"),
        Index("ix_payments_vendor_id_created_at", "vendor_id", "created_at"),
        Index("ix_payments_created_at", "created_at"),
        # Webhooks name the provider's charge.
        Index(
            "ix_payments_provider_ref",
            "provider",
            "provider_ref",
            unique=True,
            postgresql_where=text("provider_ref IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    hospital_org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    vendor_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    method: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    captured_amount: Mapped[Decimal] = mapped_column(Amount, server_default=text("0"))
    refunded_amount: Mapped[Decimal] = mapped_column(Amount, server_default=text("0"))
    # Of `amount`, the order's cylinder deposits, and how much of them was given back.
    deposit_amount: Mapped[Decimal] = mapped_column(Amount, server_default=text("0"))
    deposit_credited: Mapped[Decimal] = mapped_column(Amount, server_default=text("0"))
    provider: Mapped[str | None] = mapped_column(String(30))
    provider_token: Mapped[str | None] = mapped_column(String(100))
    provider_ref: Mapped[str | None] = mapped_column(String(100))
    last4: Mapped[str | None] = mapped_column(String(4))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    # [{type, status, at, amount?, detail, actor?}], appended by state.apply only.
    events: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    # Set in Python, not by the server: answers are built before the commit.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    invoice: Mapped[Invoice | None] = relationship(lazy="selectin", uselist=False)
    deposit_credits: Mapped[list[DepositCredit]] = relationship(
        lazy="selectin", order_by="(DepositCredit.created_at, DepositCredit.id)"
    )


class PendingCardToken(Base):
    """A card token order-service handed over for an order it is placing, or for an SOS
    request whose order a vendor has yet to accept (an internal call behind its service key:
    the token never travels in an event). The order's order.placed takes it to authorize the
    card; one whose order was never committed is pruned after CARD_TOKEN_RETENTION_SECONDS."""

    __tablename__ = "pending_card_tokens"
    __table_args__ = (
        CheckConstraint(f"token ~ '{TOKEN_PATTERN}'", name="token"),
        Index("ix_pending_card_tokens_received_at", "received_at"),
    )

    # The order's id, or the SOS request's (SOS orders carry their sos_id).
    held_for: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    token: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


invoice_number_seq = Sequence("invoice_number_seq", metadata=Base.metadata)


class Invoice(Base):
    """Net-30 invoice of an `invoice` order, issued when the order is delivered."""

    __tablename__ = "invoices"
    __table_args__ = (
        CheckConstraint(_in("status", tuple(InvoiceStatus)), name="status"),
        CheckConstraint("amount >= 0", name="amount_non_negative"),
        CheckConstraint(
            "credited_amount >= 0 AND credited_amount <= amount", name="credited_within_amount"
        ),
        CheckConstraint("due_at > issued_at", name="due_after_issue"),
        Index("ix_invoices_hospital_org_id_issued_at", "hospital_org_id", "issued_at"),
        Index("ix_invoices_vendor_id_issued_at", "vendor_id", "issued_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    number: Mapped[str] = mapped_column(String(30), unique=True)
    payment_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("payments.id", ondelete="CASCADE"), unique=True
    )
    order_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    hospital_org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    vendor_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    amount: Mapped[Decimal] = mapped_column(Amount)
    # Returned cylinders' deposits credited against it (what is owed is amount minus this).
    credited_amount: Mapped[Decimal] = mapped_column(Amount, server_default=text("0"))
    currency: Mapped[str] = mapped_column(String(3))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(10))


class DepositCredit(Base):
    """A returned cylinder's deposit, credited once to the payment of the order it was
    charged on: a refund (card, cash on delivery) or a credit on the order's invoice.

    `pending` while that payment is not settled (or not opened: events out of order);
    `void` when nothing can be credited (the payment was voided or failed, another
    currency or organisation, nothing left of its deposits)."""

    __tablename__ = "deposit_credits"
    __table_args__ = (
        CheckConstraint(_in("status", tuple(DepositCreditStatus)), name="status"),
        CheckConstraint(f"kind IS NULL OR {_in('kind', tuple(DepositCreditKind))}", name="kind"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "status <> 'credited' OR "
            "(kind IS NOT NULL AND payment_id IS NOT NULL AND credited_at IS NOT NULL)",
            name="credited_complete",
        ),
        # The pending credits of an order, read when its payment is opened or settled.
        Index(
            "ix_deposit_credits_pending_order_id",
            "order_id",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_deposit_credits_payment_id", "payment_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    return_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    # Null until the order's payment is opened.
    payment_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("payments.id", ondelete="CASCADE")
    )
    # The order the cylinder was delivered and its deposit charged on.
    order_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    hospital_org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    vendor_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    serial: Mapped[str] = mapped_column(String(40))
    # The return's deposit; once credited, what was given back (less when little was left).
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str | None] = mapped_column(String(3))
    kind: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    credited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookEvent(Base):
    """A provider webhook, recorded in the transaction of its effect: a replay finds it."""

    __tablename__ = "webhook_events"

    provider: Mapped[str] = mapped_column(String(30), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(100))
    # processed | ignored
    outcome: Mapped[str] = mapped_column(String(20))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SandboxCharge(Base):
    """A charge as the sandbox provider sees it (its side of the books, not ours)."""

    __tablename__ = "sandbox_charges"
    __table_args__ = (
        CheckConstraint(_in("status", tuple(SandboxChargeStatus)), name="status"),
        CheckConstraint(
            "refunded_amount <= captured_amount AND captured_amount <= authorized_amount",
            name="amounts",
        ),
        CheckConstraint(f"token ~ '{TOKEN_PATTERN}'", name="token"),
    )

    ref: Mapped[str] = mapped_column(String(40), primary_key=True)
    token: Mapped[str] = mapped_column(String(100))
    last4: Mapped[str] = mapped_column(String(4))
    currency: Mapped[str] = mapped_column(String(3))
    authorized_amount: Mapped[Decimal] = mapped_column(Amount)
    captured_amount: Mapped[Decimal] = mapped_column(Amount, server_default=text("0"))
    refunded_amount: Mapped[Decimal] = mapped_column(Amount, server_default=text("0"))
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SandboxRequest(Base):
    """The sandbox's idempotency map: the same key gets the first answer, never a second
    authorization. Kept in the database, as a provider keeps it on its side."""

    __tablename__ = "sandbox_requests"

    idempotency_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    operation: Mapped[str] = mapped_column(String(20))
    charge_ref: Mapped[str | None] = mapped_column(String(40))
    response: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


outbox = define_outbox_table(Base.metadata)
inbox = define_inbox_table(Base.metadata)
idempotency_keys = define_idempotency_table(Base.metadata)
