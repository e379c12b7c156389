"""Request and response bodies of admin-service's API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from flow_shared.pagination import Page


class VendorOrganization(BaseModel):
    """A vendor organisation as user-service reports it (unknown extra fields are ignored)."""

    id: uuid.UUID
    name: str
    license_number: str | None = None
    verified: bool
    suspended: bool
    created_at: datetime


VendorPage = Page[VendorOrganization]


class SuspendVendorRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # user-service keeps at most 500 characters; refusing here gives the admin a 422, not a 502.
    reason: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
        | None
    ) = None
