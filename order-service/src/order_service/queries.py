"""Reading orders: who sees which (hospital: its own; vendor: those sent to it; admin: all)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.auth import Principal
from flow_shared.errors import Forbidden
from flow_shared.pagination import Page, PageParams, fetch_page
from order_service.errors import OrderNotFound
from order_service.models import Order, OrderStatus
from order_service.schemas import OrderOut


def visible_orders(principal: Principal) -> Select[Any]:
    statement = select(Order)
    if principal.is_platform_admin:
        return statement
    if principal.org_kind == "hospital":
        return statement.where(Order.hospital_org_id == principal.org_id)
    if principal.org_kind == "vendor":
        return statement.where(Order.vendor_id == principal.org_id)
    raise Forbidden("Orders are for hospitals, vendors and platform admins.")


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
