"""Request and response bodies of admin-service's API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from flow_shared.clock import utcnow
from flow_shared.pagination import Page
from flow_shared.validation import NoNul


class VendorOrganization(BaseModel):
    """A vendor organisation as user-service reports it (unknown extra fields are ignored)."""

    id: uuid.UUID
    name: str
    license_number: str | None = None
    verified: bool
    suspended: bool
    created_at: datetime


VendorPage = Page[VendorOrganization]

OrganizationKind = Literal["hospital", "vendor"]


class Organization(BaseModel):
    """A hospital or vendor organisation as user-service reports it (unknown extra fields
    are ignored)."""

    id: uuid.UUID
    name: str
    kind: OrganizationKind
    license_number: str | None = None
    phone: str | None = None
    oxygen_beds: int | None = None
    verified: bool
    suspended: bool
    suspension_reason: str | None = None
    license_expires_on: date | None = None
    verified_at: datetime | None = None
    suspended_at: datetime | None = None
    created_at: datetime


OrganizationPage = Page[Organization]


class VerifyOrganizationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    license_expires_on: date = Field(description="The last day the licence is valid (UTC).")

    @field_validator("license_expires_on")
    @classmethod
    def _in_the_future(cls, value: date) -> date:
        if value <= utcnow().date():
            raise ValueError("license_expires_on must be a date in the future")
        return value


SuspensionReason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), NoNul()
]


class SuspendOrganizationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: SuspensionReason


class SuspendVendorRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # user-service keeps at most 500 characters; refusing here gives the admin a 422, not a 502.
    reason: (
        Annotated[
            str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), NoNul()
        ]
        | None
    ) = None


class PlatformStats(BaseModel):
    """GET /api/v1/admin/stats, computed from the event projection."""

    orders_by_status: dict[str, int] = Field(
        description="Every order status with the number of orders now in it."
    )
    orders_today: int = Field(description="Orders placed since midnight UTC.")
    gmv: dict[str, Decimal] = Field(
        description="Sum of the totals of delivered orders per currency, as decimal strings."
    )
    avg_confirm_minutes: float | None = Field(
        description="Average minutes from placed to confirmed (0.1 precision); null if none."
    )
    avg_delivery_minutes: float | None = Field(
        description="Average minutes from placed to delivered (0.1 precision); null if none."
    )
    open_emergency_orders: int = Field(
        description="Emergency orders that are placed, confirmed or dispatched."
    )
    active_vendors: int = Field(description="Vendors verified and not suspended.")
    active_hospitals: int = Field(description="Hospitals verified and not suspended.")
    active_shortages: int = Field(description="Declared shortages not yet ended.")
    open_sos: int = Field(
        description="SOS requests opened and not yet fulfilled, unfilled or cancelled."
    )


class AuditEventOut(BaseModel):
    """One domain event as admin-service received it (secrets redacted)."""

    id: uuid.UUID
    type: str
    producer: str
    occurred_at: datetime
    correlation_id: str | None
    data: dict[str, Any]


AuditPage = Page[AuditEventOut]

ServiceStatus = Literal["ok", "failing", "unreachable", "not configured"]


class ServiceHealth(BaseModel):
    status: ServiceStatus = Field(
        description="ok: ready; failing: answered not ready; unreachable: no answer in time."
    )
    checks: dict[str, str] | None = Field(
        default=None, description="The service's own dependency checks, when it named them."
    )


class FleetHealth(BaseModel):
    """GET /api/v1/admin/health: every service's readiness, admin-service's own included."""

    status: Literal["ok", "degraded"] = Field(description="ok only when every service is ok.")
    services: dict[str, ServiceHealth]
