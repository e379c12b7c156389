"""site_consumption: hospitals' reported oxygen use (inventory-service's supply.reported),
in units of each oxygen product a day, for the ALLOCATION_DAYS floor of their caps

Revision ID: 20261207_0008
Revises: 20261207_0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261207_0008"
down_revision: str | None = "20261207_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "orders"


def upgrade() -> None:
    op.create_table(
        "site_consumption",
        sa.Column("site_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("hospital_org_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("daily_units", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_site_consumption")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_site_consumption_hospital_org_id",
        "site_consumption",
        ["hospital_org_id"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("site_consumption", schema=SCHEMA)
