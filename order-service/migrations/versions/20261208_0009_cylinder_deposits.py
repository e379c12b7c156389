"""cylinder_deposits: an order's deposit_total (refundable, charged next to total), each
line's deposit_per_unit, and whether its cylinders are tracked by serial at
inventory-service; existing orders read 0 and untracked

Revision ID: 20261208_0009
Revises: 20261207_0008
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261208_0009"
down_revision: str | None = "20261207_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "orders"
AMOUNT = sa.Numeric(14, 2)


def upgrade() -> None:
    # Server defaults: rows written before (or by an older replica) read 0 / untracked.
    op.add_column(
        "orders",
        sa.Column("deposit_total", AMOUNT, server_default=sa.text("0"), nullable=False),
        schema=SCHEMA,
    )
    op.add_column(
        "orders",
        sa.Column(
            "cylinders_tracked", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        schema=SCHEMA,
    )
    op.add_column(
        "order_items",
        sa.Column("deposit_per_unit", AMOUNT, server_default=sa.text("0"), nullable=False),
        schema=SCHEMA,
    )
    op.create_check_constraint(
        op.f("ck_orders_deposit_non_negative"), "orders", "deposit_total >= 0", schema=SCHEMA
    )
    op.create_check_constraint(
        op.f("ck_order_items_deposit_non_negative"),
        "order_items",
        "deposit_per_unit >= 0",
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("ck_order_items_deposit_non_negative"), "order_items", type_="check", schema=SCHEMA
    )
    op.drop_constraint(
        op.f("ck_orders_deposit_non_negative"), "orders", type_="check", schema=SCHEMA
    )
    op.drop_column("order_items", "deposit_per_unit", schema=SCHEMA)
    op.drop_column("orders", "cylinders_tracked", schema=SCHEMA)
    op.drop_column("orders", "deposit_total", schema=SCHEMA)
