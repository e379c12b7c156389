"""Request and response bodies of the public payment API."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
)

from flow_shared.validation import MAX_AMOUNT, DbInteger, NoNul
from payment_service.models import TOKEN_PATTERN, DepositCredit, Invoice, Payment

CENT = Decimal("0.01")


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT)


def money_text(value: Decimal) -> str:
    return str(cents(value))


# Decimal end to end; on the wire a string such as "1250.00", never a float.
Money = Annotated[Decimal, PlainSerializer(money_text, return_type=str)]
# Amounts sent to us: positive, at most two decimals, kept with exactly two.
MoneyIn = Annotated[
    Decimal,
    Field(gt=0, le=MAX_AMOUNT, max_digits=14, decimal_places=2, allow_inf_nan=False),
    AfterValidator(cents),
    PlainSerializer(money_text, return_type=str),
]


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Absent: everything still refundable (captured minus already refunded).
    amount: MoneyIn | None = None
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500), NoNul()]


class PaymentEventOut(BaseModel):
    """One entry of a payment's history."""

    type: str
    status: str
    at: datetime
    amount: Money | None = None
    detail: str
    actor: str | None = None


class InvoiceOut(BaseModel):
    id: uuid.UUID
    number: str
    payment_id: uuid.UUID
    order_id: uuid.UUID
    hospital_org_id: uuid.UUID
    vendor_id: uuid.UUID
    amount: Money
    # Returned cylinders' deposits credited on it: what is owed is amount minus this.
    credited_amount: Money
    currency: str
    issued_at: datetime
    due_at: datetime
    status: str

    @classmethod
    def of(cls, invoice: Invoice) -> InvoiceOut:
        return cls(
            id=invoice.id,
            number=invoice.number,
            payment_id=invoice.payment_id,
            order_id=invoice.order_id,
            hospital_org_id=invoice.hospital_org_id,
            vendor_id=invoice.vendor_id,
            amount=invoice.amount,
            credited_amount=invoice.credited_amount,
            currency=invoice.currency,
            issued_at=invoice.issued_at,
            due_at=invoice.due_at,
            status=invoice.status,
        )


class DepositCreditOut(BaseModel):
    """A returned cylinder's deposit given back to this payment (or waiting to be)."""

    id: uuid.UUID
    return_id: uuid.UUID
    serial: str
    # The return's deposit; once credited, what was given back.
    amount: Money
    currency: str | None
    kind: Literal["refund", "invoice_credit"] | None
    # pending: the payment is not settled yet; void: nothing was credited.
    status: Literal["pending", "credited", "void"]
    created_at: datetime
    credited_at: datetime | None

    @classmethod
    def of(cls, credit: DepositCredit) -> DepositCreditOut:
        return cls(
            id=credit.id,
            return_id=credit.return_id,
            serial=credit.serial,
            amount=credit.amount,
            currency=credit.currency,
            kind=credit.kind,
            status=credit.status,
            created_at=credit.created_at,
            credited_at=credit.credited_at,
        )


class PaymentOut(BaseModel):
    id: uuid.UUID
    order_id: uuid.UUID
    hospital_org_id: uuid.UUID
    vendor_id: uuid.UUID
    method: Literal["card", "invoice", "cash_on_delivery"]
    status: Literal["pending", "authorized", "captured", "voided", "refunded", "failed"]
    amount: Money
    currency: str
    captured_amount: Money
    refunded_amount: Money
    # Of `amount`, the order's cylinder deposits, and what returned cylinders got back.
    deposit_amount: Money
    deposit_credited: Money
    deposit_credits: list[DepositCreditOut]
    # The card's last four digits; the card number itself is never stored.
    last4: str | None
    failure_reason: str | None
    invoice: InvoiceOut | None
    events: list[PaymentEventOut]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, payment: Payment) -> PaymentOut:
        return cls(
            id=payment.id,
            order_id=payment.order_id,
            hospital_org_id=payment.hospital_org_id,
            vendor_id=payment.vendor_id,
            method=payment.method,
            status=payment.status,
            amount=payment.amount,
            currency=payment.currency,
            captured_amount=payment.captured_amount,
            refunded_amount=payment.refunded_amount,
            deposit_amount=payment.deposit_amount,
            deposit_credited=payment.deposit_credited,
            deposit_credits=[DepositCreditOut.of(credit) for credit in payment.deposit_credits],
            last4=payment.last4,
            failure_reason=payment.failure_reason,
            invoice=InvoiceOut.of(payment.invoice) if payment.invoice is not None else None,
            events=[PaymentEventOut.model_validate(entry) for entry in payment.events],
            created_at=payment.created_at,
            updated_at=payment.updated_at,
        )


class SandboxWebhook(BaseModel):
    """A webhook of the built-in sandbox provider (signed: see service/webhooks.py).

    - `charge.captured` {charge_id, amount?}: the provider captured the charge (amount
      defaults to the whole authorization);
    - `charge.refunded` {charge_id, amount_refunded}: the total refunded so far at the
      provider (cumulative, so a late or repeated report never refunds twice);
    - `charge.expired` {charge_id}: the authorization lapsed without a capture.
    Other types are acknowledged and ignored.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    type: Annotated[str, StringConstraints(min_length=1, max_length=100), NoNul()]
    created: DbInteger | None = None
    charge_id: Annotated[str, StringConstraints(min_length=1, max_length=100), NoNul()]
    amount: MoneyIn | None = None
    amount_refunded: MoneyIn | None = None


class WebhookAck(BaseModel):
    id: str
    # processed: it changed a payment; ignored: nothing to change; duplicate: seen before.
    outcome: Literal["processed", "ignored", "duplicate"]


def webhook_body_schema() -> dict[str, Any]:
    """The request body of the webhook route, for the OpenAPI document (the route reads
    the raw body itself: the signature covers the exact bytes)."""
    return {
        "required": True,
        "content": {"application/json": {"schema": SandboxWebhook.model_json_schema()}},
    }


class CardTokenHandover(BaseModel):
    """PUT /internal/orders/{order_id}/card-token and /internal/sos/{sos_id}/card-token:
    order-service hands over the token of a card order it is placing, or of a card-paid SOS
    request it is opening (never a card number: the pattern refuses digits)."""

    model_config = ConfigDict(extra="forbid")

    card_token: Annotated[str, StringConstraints(max_length=100, pattern=TOKEN_PATTERN)]
