"""allocation: open units per hospital and product, admins' caps, the hospitals projection

`allocation_usage` starts from the orders open now (placed, confirmed, dispatched), so
that orders placed before this migration give back exactly what they count.

Revision ID: 20261207_0004
Revises: 20261207_0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261207_0004"
down_revision: str | None = "20261207_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "orders"


def upgrade() -> None:
    op.create_table(
        "allocation_usage",
        sa.Column("hospital_org_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("product_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("open_units", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "open_units >= 0", name=op.f("ck_allocation_usage_open_units_non_negative")
        ),
        sa.PrimaryKeyConstraint("hospital_org_id", "product_id", name=op.f("pk_allocation_usage")),
        schema=SCHEMA,
    )
    op.create_table(
        "allocation_caps",
        sa.Column("hospital_org_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("product_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("updated_by", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("units >= 0", name=op.f("ck_allocation_caps_units_non_negative")),
        sa.PrimaryKeyConstraint("hospital_org_id", "product_id", name=op.f("pk_allocation_caps")),
        schema=SCHEMA,
    )
    op.create_table(
        "hospitals",
        sa.Column("org_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("verified", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("suspended", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("suspended_as_of", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_hospitals")),
        schema=SCHEMA,
    )
    op.execute(
        sa.text(
            f"INSERT INTO {SCHEMA}.allocation_usage (hospital_org_id, product_id, open_units) "  # noqa: S608
            "SELECT o.hospital_org_id, i.product_id, sum(i.quantity) "
            f"FROM {SCHEMA}.orders o JOIN {SCHEMA}.order_items i ON i.order_id = o.id "
            "WHERE o.status IN ('placed', 'confirmed', 'dispatched') "
            "GROUP BY o.hospital_org_id, i.product_id"
        )
    )


def downgrade() -> None:
    op.drop_table("hospitals", schema=SCHEMA)
    op.drop_table("allocation_caps", schema=SCHEMA)
    op.drop_table("allocation_usage", schema=SCHEMA)
