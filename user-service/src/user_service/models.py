"""Tables of the "users" schema: organisations, their users, refresh tokens, invitations,
the outbox."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flow_shared.db import service_metadata
from flow_shared.events.outbox import define_outbox_table

ORG_KINDS = ("hospital", "vendor", "platform")
ROLES = ("org_admin", "staff", "platform_admin")
MAX_OXYGEN_BEDS = 100_000


class Base(DeclarativeBase):
    metadata = service_metadata("users")


def _in(column: str, values: tuple[object, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Organization(Base):
    __tablename__ = "organizations"
    __table_args__ = (
        CheckConstraint(_in("kind", ORG_KINDS), name="kind"),
        # Exactly one platform organisation: concurrent bootstraps cannot create two.
        Index(
            "uq_organizations_single_platform",
            "kind",
            unique=True,
            postgresql_where=text("kind = 'platform'"),
        ),
        Index("ix_organizations_kind_created_at", "kind", "created_at"),
        CheckConstraint(
            f"oxygen_beds IS NULL OR oxygen_beds BETWEEN 0 AND {MAX_OXYGEN_BEDS}",
            name="oxygen_beds",
        ),
        # The licence job reads organisations by expiry date.
        Index(
            "ix_organizations_license_expires_on",
            "license_expires_on",
            postgresql_where=text("license_expires_on IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    license_number: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(40))
    verified: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    suspended: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    suspended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    suspension_reason: Mapped[str | None] = mapped_column(Text)
    # Hospitals only: the beds with piped or cylinder oxygen they declared.
    oxygen_beds: Mapped[int | None] = mapped_column(Integer)
    # Set by a platform admin on verification; the licence job suspends after it.
    license_expires_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


LICENSE_WARNING_DAYS = (30, 7)


class LicenseWarning(Base):
    """A licence-expiry warning sent (organization.license_expiring). Unique per licence
    date and threshold: re-runs, restarts and concurrent passes never repeat one, and a
    renewed licence (a new date) starts with none."""

    __tablename__ = "license_warnings"
    __table_args__ = (
        UniqueConstraint("org_id", "license_expires_on", "days_before"),
        CheckConstraint(_in("days_before", LICENSE_WARNING_DAYS), name="days_before"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    org_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE")
    )
    license_expires_on: Mapped[date] = mapped_column(Date)
    days_before: Mapped[int] = mapped_column(SmallInteger)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_in("role", ROLES), name="role"),
        # E-mails are stored lower-cased, so the unique constraint is case-insensitive.
        CheckConstraint("email = lower(email)", name="email_lowercase"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str] = mapped_column(String(200))
    org_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id"), index=True
    )
    role: Mapped[str] = mapped_column(String(20))
    # The token epoch (see sessions.py): access tokens issued before it are refused.
    tokens_valid_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class RefreshToken(Base):
    """One issued refresh token. Only its SHA-256 is kept; a family is one login session."""

    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    family_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replaced_by: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("refresh_tokens.id", ondelete="SET NULL")
    )


INVITABLE_ROLES = ("staff", "org_admin")


class Invitation(Base):
    """An org admin's invitation of an e-mail address. Only the SHA-256 of its one-time
    token is kept; the token itself exists only in the e-mail to the invitee."""

    __tablename__ = "invitations"
    __table_args__ = (
        CheckConstraint(_in("role", INVITABLE_ROLES), name="role"),
        CheckConstraint("email = lower(email)", name="email_lowercase"),
        Index("ix_invitations_org_id_created_at", "org_id", "created_at"),
        Index("ix_invitations_org_id_email", "org_id", "email"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    org_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE")
    )
    email: Mapped[str] = mapped_column(String(254))
    full_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


outbox = define_outbox_table(Base.metadata)
