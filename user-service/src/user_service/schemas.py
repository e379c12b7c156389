"""Request and response bodies. Every input model forbids unknown fields (no mass assignment)."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from flow_shared.clock import utcnow
from flow_shared.validation import NoNul
from user_service.models import MAX_OXYGEN_BEDS

MIN_PASSWORD_LENGTH = 12
# Argon2 accepts any length; the cap only keeps request bodies and hashing time sane.
MAX_PASSWORD_LENGTH = 256
EMAIL_REGEX = r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$"
EMAIL_PATTERN = re.compile(EMAIL_REGEX)

Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, max_length=254, pattern=EMAIL_REGEX),
    NoNul(),
]
NewPassword = Annotated[
    str, StringConstraints(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)
]
# Login checks a password, it does not set one: any non-empty value gets the same 401.
GivenPassword = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
FullName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoNul()
]
OrgName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoNul()
]
LicenseNumber = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoNul()
]
Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 ().-]{2,38}$")
]
OpaqueToken = Annotated[str, StringConstraints(min_length=1, max_length=200), NoNul()]
OrgKind = Literal["hospital", "vendor", "platform"]
Role = Literal["org_admin", "staff", "platform_admin"]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- auth -----------------------------------------------------------------------------


class OrganizationRegistration(Input):
    name: OrgName
    # Platform organisations are never self-registered: only the bootstrap makes one.
    kind: Literal["hospital", "vendor"]
    # Required of hospitals (a platform admin checks it before verifying them).
    license_number: LicenseNumber | None = None
    phone: Phone | None = None
    # Hospitals only: beds with oxygen supply.
    oxygen_beds: Annotated[int, Field(ge=0, le=MAX_OXYGEN_BEDS)] | None = None

    @model_validator(mode="after")
    def _hospital_fields(self) -> OrganizationRegistration:
        if self.kind == "hospital" and self.license_number is None:
            raise ValueError("a hospital registers with its license_number")
        if self.kind != "hospital" and self.oxygen_beds is not None:
            raise ValueError("only hospitals declare oxygen_beds")
        return self


class RegisterRequest(Input):
    email: Email
    password: NewPassword
    full_name: FullName
    organization: OrganizationRegistration


class LoginRequest(Input):
    email: Email
    password: GivenPassword


class RefreshRequest(Input):
    refresh_token: OpaqueToken


class LogoutRequest(Input):
    refresh_token: OpaqueToken | None = None


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires.")


# --- users and organisations -------------------------------------------------------------


class OrganizationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    kind: OrgKind
    license_number: str | None
    phone: str | None
    verified: bool
    suspended: bool
    verified_at: datetime | None
    suspended_at: datetime | None
    oxygen_beds: int | None
    license_expires_on: date | None
    created_at: datetime


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    org_id: uuid.UUID
    created_at: datetime
    updated_at: datetime


class MeOut(UserOut):
    organization: OrganizationOut


class RegisterResponse(BaseModel):
    user: UserOut
    organization: OrganizationOut


class UpdateMeRequest(Input):
    full_name: FullName


class ChangePasswordRequest(Input):
    current_password: GivenPassword
    new_password: NewPassword


class InviteMemberRequest(Input):
    email: Email
    full_name: FullName
    role: Literal["staff", "org_admin"]


class InvitationOut(BaseModel):
    """The same fields whether or not the address already has an account."""

    id: uuid.UUID
    email: str
    role: Literal["staff", "org_admin"]
    status: Literal["pending", "accepted", "revoked", "expired"]
    expires_at: datetime


class AcceptInvitationRequest(Input):
    token: OpaqueToken
    password: NewPassword
    full_name: FullName | None = None


# --- internal (admin-service) --------------------------------------------------------------


class VendorItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    license_number: str | None
    verified: bool
    suspended: bool
    created_at: datetime


class OrganizationItem(BaseModel):
    """A hospital or vendor organisation as platform admins see it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    kind: Literal["hospital", "vendor"]
    license_number: str | None
    phone: str | None
    oxygen_beds: int | None
    verified: bool
    suspended: bool
    suspension_reason: str | None
    license_expires_on: date | None
    verified_at: datetime | None
    suspended_at: datetime | None
    created_at: datetime


SuspensionReason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), NoNul()]


class VerifyVendorRequest(Input):
    actor_id: uuid.UUID
    # Optional on this body (the vendor path verifies without one); when given it must
    # lie in the future. The organisation paths always send it.
    license_expires_on: date | None = None

    @model_validator(mode="after")
    def _expiry_in_the_future(self) -> VerifyVendorRequest:
        if self.license_expires_on is not None and self.license_expires_on <= utc_today():
            raise ValueError("license_expires_on must be a date in the future")
        return self


class SuspendVendorRequest(Input):
    actor_id: uuid.UUID
    reason: SuspensionReason | None = None


class ReinstateRequest(Input):
    actor_id: uuid.UUID


def utc_today() -> date:
    return utcnow().date()
