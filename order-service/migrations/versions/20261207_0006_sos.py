"""sos: SOS broadcast requests, their rings and offers; orders.sos_id

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

SCHEMA = "orders"


def upgrade() -> None:
    op.add_column(
        "orders", sa.Column("sos_id", postgresql.UUID(as_uuid=True), nullable=True), schema=SCHEMA
    )
    op.create_unique_constraint(op.f("uq_orders_sos_id"), "orders", ["sos_id"], schema=SCHEMA)
    op.create_table(
        "sos_requests",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("hospital_org_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("created_by", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("product_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("site_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("delivery_lat", sa.Double(), nullable=False),
        sa.Column("delivery_lon", sa.Double(), nullable=False),
        sa.Column("delivery_address", sa.Text(), nullable=True),
        sa.Column("max_distance_km", sa.Double(), nullable=False),
        sa.Column("ring_size", sa.Integer(), nullable=False),
        sa.Column("ring_timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("payment_method", sa.String(length=20), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("current_ring", sa.Integer(), nullable=False),
        sa.Column("ring_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("order_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("closed_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'fulfilled', 'cancelled', 'unfilled')",
            name=op.f("ck_sos_requests_status"),
        ),
        sa.CheckConstraint(
            "payment_method IN ('invoice', 'card', 'cash_on_delivery')",
            name=op.f("ck_sos_requests_payment_method"),
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_sos_requests_quantity_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sos_requests")),
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_sos_requests_hospital_org_id_created_at"),
        "sos_requests",
        ["hospital_org_id", "created_at"],
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_sos_requests_open_ring_expires_at"),
        "sos_requests",
        ["ring_expires_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_table(
        "sos_rings",
        sa.Column("sos_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_reason", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(
            ["sos_id"],
            [f"{SCHEMA}.sos_requests.id"],
            name=op.f("fk_sos_rings_sos_id_sos_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sos_id", "number", name=op.f("pk_sos_rings")),
        schema=SCHEMA,
    )
    op.create_table(
        "sos_offers",
        sa.Column("sos_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("vendor_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("ring_number", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("depot_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("distance_km", sa.Double(), nullable=False),
        sa.Column("eta_min", sa.Integer(), nullable=True),
        sa.Column("answer", sa.String(length=20), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_by", postgresql.UUID(as_uuid=True), nullable=True),
        sa.CheckConstraint(
            "answer IS NULL OR answer IN ('declined', 'accepted')",
            name=op.f("ck_sos_offers_answer"),
        ),
        sa.ForeignKeyConstraint(
            ["sos_id"],
            [f"{SCHEMA}.sos_requests.id"],
            name=op.f("fk_sos_offers_sos_id_sos_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sos_id", "vendor_id", name=op.f("pk_sos_offers")),
        schema=SCHEMA,
    )
    op.create_index(op.f("ix_sos_offers_vendor_id"), "sos_offers", ["vendor_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index(op.f("ix_sos_offers_vendor_id"), table_name="sos_offers", schema=SCHEMA)
    op.drop_table("sos_offers", schema=SCHEMA)
    op.drop_table("sos_rings", schema=SCHEMA)
    op.drop_index(
        op.f("ix_sos_requests_open_ring_expires_at"), table_name="sos_requests", schema=SCHEMA
    )
    op.drop_index(
        op.f("ix_sos_requests_hospital_org_id_created_at"),
        table_name="sos_requests",
        schema=SCHEMA,
    )
    op.drop_table("sos_requests", schema=SCHEMA)
    op.drop_constraint(op.f("uq_orders_sos_id"), "orders", schema=SCHEMA, type_="unique")
    op.drop_column("orders", "sos_id", schema=SCHEMA)
