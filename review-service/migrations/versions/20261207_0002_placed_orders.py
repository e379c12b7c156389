"""placed-orders projection: who owns an order that is not delivered yet

Revision ID: 20261207_0002
Revises: 20261124_0001
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207_0002"
down_revision: str | None = "20261124_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "reviews"


def upgrade() -> None:
    op.create_table(
        "placed_orders",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("hospital_org_id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_placed_orders")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("placed_orders", schema=SCHEMA)
