"""Reading orders: who sees which (hospital: its own; vendor: those sent to it; admin: all)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.auth import Principal
from flow_shared.pagination import Page, PageParams, fetch_page
from flow_shared.visibility import scoped_to
from order_service.errors import OrderNotFound
from order_service.models import Order, OrderStatus
from order_service.schemas import OrderOut


def visible_orders(principal: Principal) -> Select[Any]:
    return scoped_to(
        select(Order),
        principal,
        hospital=Order.hospital_org_id,
        vendor=Order.vendor_id,
        what="Orders",
    )


async def list_orders(
    session: AsyncSession, principal: Principal, *, status: OrderStatus | None, params: PageParams
) -> Page[OrderOut]:
    statement = visible_orders(principal)
    if status is not None:
        statement = statement.where(Order.status == status)
    rows, total = await fetch_page(
        session, statement.order_by(Order.created_at.desc(), Order.id.desc()), params
    )
    return Page[OrderOut].of([OrderOut.of(order) for order in rows], params, total)


async def get_order(session: AsyncSession, principal: Principal, order_id: uuid.UUID) -> Order:
    order: Order | None = await session.scalar(
        visible_orders(principal).where(Order.id == order_id)
    )
    if order is None:
        raise OrderNotFound("No order with this id is visible to you.")
    return order
