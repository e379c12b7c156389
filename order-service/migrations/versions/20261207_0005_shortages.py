"""shortages: the projection of admin-service's shortage declarations

Revision ID: 20261207_0005
Revises: 20261207_0004
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261207_0005"
down_revision: str | None = "20261207_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "orders"


def upgrade() -> None:
    op.create_table(
        "shortages",
        sa.Column("shortage_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("radius_km", sa.Double(), nullable=False),
        sa.Column("categories", postgresql.ARRAY(sa.String(length=32)), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("radius_km > 0", name=op.f("ck_shortages_radius_positive")),
        sa.PrimaryKeyConstraint("shortage_id", name=op.f("pk_shortages")),
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_shortages_active"),
        "shortages",
        ["ended_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("ended_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_shortages_active"), table_name="shortages", schema=SCHEMA)
    op.drop_table("shortages", schema=SCHEMA)
