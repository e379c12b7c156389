"""site_supply, supply_orders and auto_reorders: the oxygen runway

site_supply holds each hospital site's last report (its gas and rate, and the report as
given), the level last evaluated and the two moments that follow from the state: when
the gas runs out (the lists sort on it) and when the level next changes (the alert job
scans it). supply_orders projects order-service's orders bound for a site: inbound while
open, added to the site's gas once when delivered. auto_reorders are the orders and SOS
requests Flow places for a site on its own, at most one open of each kind per site.

Revision ID: 20261207_0006
Revises: 20261207_0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261207_0006"
down_revision: str | None = "20261207_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"


def _at(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "site_supply",
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("hospital_org_id", sa.Uuid(), nullable=False),
        sa.Column("site_name", sa.String(length=200), nullable=True),
        sa.Column("gas_liters", sa.Numeric(), nullable=False),
        sa.Column("consumption_lpm", sa.Numeric(), nullable=False),
        _at("as_of"),
        sa.Column("stock", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("patients", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        _at("reported_at"),
        sa.Column("reported_by", sa.Uuid(), nullable=False),
        sa.Column("alert_hours", sa.Numeric(8, 2), nullable=False),
        sa.Column("critical_hours", sa.Numeric(8, 2), nullable=False),
        sa.Column("level", sa.String(length=16), server_default="ok", nullable=False),
        _at("runs_out_at", nullable=True),
        _at("next_check_at", nullable=True),
        sa.Column("auto_reorder_product_id", sa.Uuid(), nullable=True),
        sa.Column("auto_reorder_quantity", sa.Integer(), nullable=True),
        sa.Column("auto_reorder_priority", sa.String(length=16), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "gas_liters >= 0 AND consumption_lpm >= 0", name=op.f("ck_site_supply_amounts")
        ),
        sa.CheckConstraint(
            "critical_hours >= 0 AND critical_hours < alert_hours",
            name=op.f("ck_site_supply_thresholds"),
        ),
        sa.CheckConstraint("level IN ('ok', 'low', 'critical')", name=op.f("ck_site_supply_level")),
        sa.CheckConstraint(
            "(auto_reorder_product_id IS NULL) = (auto_reorder_quantity IS NULL)"
            " AND (auto_reorder_product_id IS NULL) = (auto_reorder_priority IS NULL)"
            " AND (auto_reorder_quantity IS NULL OR auto_reorder_quantity > 0)",
            name=op.f("ck_site_supply_auto_reorder"),
        ),
        sa.ForeignKeyConstraint(
            ["auto_reorder_product_id"],
            [f"{SCHEMA}.products.id"],
            name=op.f("fk_site_supply_auto_reorder_product_id_products"),
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_site_supply")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_site_supply_runs_out_at",
        "site_supply",
        ["runs_out_at", "site_id"],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_site_supply_hospital_runs_out_at",
        "site_supply",
        ["hospital_org_id", "runs_out_at", "site_id"],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_site_supply_next_check_at",
        "site_supply",
        ["next_check_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("next_check_at IS NOT NULL"),
    )
    op.create_table(
        "supply_orders",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("hospital_org_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _at("eta", nullable=True),
        sa.Column("items", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _at("delivered_at", nullable=True),
        _at("updated_at"),
        sa.CheckConstraint(
            "status IN ('placed', 'confirmed', 'dispatched', 'delivered', 'cancelled',"
            " 'rejected', 'expired', 'failed')",
            name=op.f("ck_supply_orders_status"),
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_supply_orders")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_supply_orders_open_site_id",
        "supply_orders",
        ["site_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("status IN ('placed', 'confirmed', 'dispatched')"),
    )
    op.create_table(
        "auto_reorders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("hospital_org_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("sos_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _at("next_attempt_at"),
        _at("created_at"),
        _at("updated_at"),
        sa.CheckConstraint("kind IN ('order', 'sos')", name=op.f("ck_auto_reorders_kind")),
        sa.CheckConstraint(
            "status IN ('pending', 'open', 'closed', 'refused')",
            name=op.f("ck_auto_reorders_status"),
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_auto_reorders_quantity")),
        sa.ForeignKeyConstraint(
            ["site_id"],
            [f"{SCHEMA}.site_supply.site_id"],
            name=op.f("fk_auto_reorders_site_id_site_supply"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            [f"{SCHEMA}.products.id"],
            name=op.f("fk_auto_reorders_product_id_products"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auto_reorders")),
        schema=SCHEMA,
    )
    op.create_index(
        "uq_auto_reorders_open_site_id_kind",
        "auto_reorders",
        ["site_id", "kind"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("status IN ('pending', 'open')"),
    )
    op.create_index(
        "ix_auto_reorders_pending_next_attempt_at",
        "auto_reorders",
        ["next_attempt_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_auto_reorders_order_id", "auto_reorders", ["order_id"], schema=SCHEMA)
    op.create_index("ix_auto_reorders_sos_id", "auto_reorders", ["sos_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("auto_reorders", schema=SCHEMA)
    op.drop_table("supply_orders", schema=SCHEMA)
    op.drop_table("site_supply", schema=SCHEMA)
