"""hospital licences: licence expiry and oxygen beds on organisations, licence warnings

organizations.license_expires_on: set by a platform admin on verification; the
licence job suspends an organisation after it. organizations.oxygen_beds: what a
hospital declared. license_warnings: the 30- and 7-day warnings sent, unique per
(org, licence date, threshold), so no warning is ever sent twice.

Existing hospitals keep `verified` as it is (true: they registered when hospitals had
no verification step), so nobody already using Flow is locked out; only hospitals
registering from now on start unverified.

Revision ID: users_0003
Revises: users_0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "users_0003"
down_revision: str | None = "users_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "users"


def upgrade() -> None:
    op.add_column("organizations", sa.Column("oxygen_beds", sa.Integer()), schema=SCHEMA)
    op.add_column("organizations", sa.Column("license_expires_on", sa.Date()), schema=SCHEMA)
    op.create_check_constraint(
        op.f("ck_organizations_oxygen_beds"),
        "organizations",
        "oxygen_beds IS NULL OR oxygen_beds BETWEEN 0 AND 100000",
        schema=SCHEMA,
    )
    op.create_index(
        "ix_organizations_license_expires_on",
        "organizations",
        ["license_expires_on"],
        schema=SCHEMA,
        postgresql_where=sa.text("license_expires_on IS NOT NULL"),
    )
    op.create_table(
        "license_warnings",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("org_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("license_expires_on", sa.Date(), nullable=False),
        sa.Column("days_before", sa.SmallInteger(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_license_warnings"),
        sa.UniqueConstraint(
            "org_id",
            "license_expires_on",
            "days_before",
            name="uq_license_warnings_org_id_license_expires_on_days_before",
        ),
        sa.CheckConstraint("days_before IN (30, 7)", name="ck_license_warnings_days_before"),
        sa.ForeignKeyConstraint(
            ["org_id"],
            [f"{SCHEMA}.organizations.id"],
            name="fk_license_warnings_org_id_organizations",
            ondelete="CASCADE",
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("license_warnings", schema=SCHEMA)
    op.drop_index("ix_organizations_license_expires_on", "organizations", schema=SCHEMA)
    op.drop_constraint(
        op.f("ck_organizations_oxygen_beds"), "organizations", type_="check", schema=SCHEMA
    )
    op.drop_column("organizations", "license_expires_on", schema=SCHEMA)
    op.drop_column("organizations", "oxygen_beds", schema=SCHEMA)
