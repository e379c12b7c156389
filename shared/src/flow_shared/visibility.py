"""Who sees which rows of a hospital-and-vendor resource (orders, payments, SOS requests):
the platform admin all, a hospital its own, a vendor those addressed to it.

A row another organisation owns is simply not selected, so reading it by id is the
resource's 404 and listing leaves it out: nothing hints that it exists.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Select
from sqlalchemy.orm import QueryableAttribute

from flow_shared.auth import Principal
from flow_shared.errors import Forbidden

# What names the owning organisation: a column holding its id, or, where ownership is
# not one column (a vendor with an offer on an SOS), the condition for an org id.
OrgOwner = QueryableAttribute[uuid.UUID] | Callable[[uuid.UUID], ColumnElement[bool]]


def scoped_to(
    statement: Select[Any],
    principal: Principal,
    *,
    hospital: OrgOwner,
    vendor: OrgOwner,
    what: str,
) -> Select[Any]:
    """`statement` narrowed to the rows `principal` may see. An organisation of any other
    kind sees none of them: 403 ("`what` are for hospitals, vendors and platform admins.")."""
    if principal.is_platform_admin:
        return statement
    if principal.org_kind == "hospital":
        return statement.where(_owned_by(hospital, principal.org_id))
    if principal.org_kind == "vendor":
        return statement.where(_owned_by(vendor, principal.org_id))
    raise Forbidden(f"{what} are for hospitals, vendors and platform admins.")


def _owned_by(owner: OrgOwner, org_id: uuid.UUID) -> ColumnElement[bool]:
    if isinstance(owner, QueryableAttribute):
        return owner == org_id
    return owner(org_id)
