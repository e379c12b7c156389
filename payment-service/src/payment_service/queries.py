"""Reading payments and invoices: who sees which (hospital: its own; vendor: those of its
orders; admin: all). Anything else is 404, never a hint that it exists."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.auth import Principal
from flow_shared.pagination import Page, PageParams, fetch_page
from flow_shared.visibility import scoped_to
from payment_service.errors import PaymentNotFound
from payment_service.models import Invoice, InvoiceStatus, Payment
from payment_service.schemas import InvoiceOut, PaymentOut


def visible_payments(principal: Principal) -> Select[Any]:
    return scoped_to(
        select(Payment),
        principal,
        hospital=Payment.hospital_org_id,
        vendor=Payment.vendor_id,
        what="Payments",
    )


async def list_payments(
    session: AsyncSession, principal: Principal, *, order_id: uuid.UUID | None, params: PageParams
) -> Page[PaymentOut]:
    statement = visible_payments(principal)
    if order_id is not None:
        statement = statement.where(Payment.order_id == order_id)
    rows, total = await fetch_page(
        session, statement.order_by(Payment.created_at.desc(), Payment.id.desc()), params
    )
    return Page[PaymentOut].of([PaymentOut.of(payment) for payment in rows], params, total)


async def get_payment(
    session: AsyncSession, principal: Principal, payment_id: uuid.UUID, *, for_update: bool = False
) -> Payment:
    statement = visible_payments(principal).where(Payment.id == payment_id)
    if for_update:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    payment: Payment | None = await session.scalar(statement)
    if payment is None:
        raise PaymentNotFound("No payment with this id is visible to you.")
    return payment


def visible_invoices(principal: Principal) -> Select[Any]:
    return scoped_to(
        select(Invoice),
        principal,
        hospital=Invoice.hospital_org_id,
        vendor=Invoice.vendor_id,
        what="Invoices",
    )


async def list_invoices(
    session: AsyncSession,
    principal: Principal,
    *,
    status: InvoiceStatus | None,
    params: PageParams,
) -> Page[InvoiceOut]:
    statement = visible_invoices(principal)
    if status is not None:
        statement = statement.where(Invoice.status == status)
    rows, total = await fetch_page(
        session, statement.order_by(Invoice.issued_at.desc(), Invoice.id.desc()), params
    )
    return Page[InvoiceOut].of([InvoiceOut.of(invoice) for invoice in rows], params, total)
