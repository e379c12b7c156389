"""initial: orders, order_items, abandoned_holds, the outbox and idempotency keys

Revision ID: 20261124_0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261124_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "orders"

STATUSES = (
    "placed",
    "confirmed",
    "dispatched",
    "delivered",
    "cancelled",
    "rejected",
    "expired",
    "failed",
)
RESERVATION_STATUSES = ("held", "release_pending", "released", "committed")
PRIORITIES = ("routine", "urgent", "emergency")
PAYMENT_METHODS = ("invoice", "card", "cash_on_delivery")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("hospital_org_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("placed_by", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("vendor_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("depot_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("site_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("delivery_lat", sa.Double(), nullable=False),
        sa.Column("delivery_lon", sa.Double(), nullable=False),
        sa.Column("delivery_address", sa.Text(), nullable=True),
        sa.Column("priority", sa.String(length=20), nullable=False),
        sa.Column("payment_method", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_history", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("reservation_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("reservation_status", sa.String(length=20), nullable=False),
        sa.Column("release_attempted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("quote_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("subtotal", sa.Numeric(14, 2), nullable=False),
        sa.Column("delivery_fee", sa.Numeric(14, 2), nullable=False),
        sa.Column("surcharge", sa.Numeric(14, 2), nullable=False),
        sa.Column("tax", sa.Numeric(14, 2), nullable=False),
        sa.Column("total", sa.Numeric(14, 2), nullable=False),
        sa.Column("distance_km", sa.Double(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("eta_minutes", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_in("status", STATUSES), name=op.f("ck_orders_status")),
        sa.CheckConstraint(
            _in("reservation_status", RESERVATION_STATUSES), name=op.f("ck_orders_reservation")
        ),
        sa.CheckConstraint(_in("priority", PRIORITIES), name=op.f("ck_orders_priority")),
        sa.CheckConstraint(
            _in("payment_method", PAYMENT_METHODS), name=op.f("ck_orders_payment_method")
        ),
        sa.CheckConstraint(
            "total = subtotal + delivery_fee + surcharge + tax", name=op.f("ck_orders_total_sum")
        ),
        sa.CheckConstraint(
            "subtotal >= 0 AND delivery_fee >= 0 AND surcharge >= 0 AND tax >= 0",
            name=op.f("ck_orders_amounts_non_negative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("reservation_id", name=op.f("uq_orders_reservation_id")),
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_orders_hospital_org_id_created_at"),
        "orders",
        ["hospital_org_id", "created_at"],
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_orders_vendor_id_created_at"), "orders", ["vendor_id", "created_at"], schema=SCHEMA
    )
    op.create_index(op.f("ix_orders_created_at"), "orders", ["created_at"], schema=SCHEMA)
    op.create_index(
        op.f("ix_orders_placed_expires_at"),
        "orders",
        ["expires_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'placed'"),
    )
    op.create_index(
        op.f("ix_orders_release_pending"),
        "orders",
        ["release_attempted_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("reservation_status = 'release_pending'"),
    )
    op.create_table(
        "order_items",
        sa.Column("order_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("product_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Numeric(), nullable=False),
        sa.Column("line_total", sa.Numeric(14, 2), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_order_items_quantity_positive")),
        sa.CheckConstraint(
            "unit_price >= 0 AND line_total >= 0", name=op.f("ck_order_items_prices_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            [f"{SCHEMA}.orders.id"],
            name=op.f("fk_order_items_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("order_id", "line_no", name=op.f("pk_order_items")),
        schema=SCHEMA,
    )
    op.create_table(
        "abandoned_holds",
        sa.Column("order_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("reservation_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("reserve_request", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("hold_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_abandoned_holds")),
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_abandoned_holds_attempted_at"), "abandoned_holds", ["attempted_at"], schema=SCHEMA
    )
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["seq"],
        schema=SCHEMA,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_idempotency_keys")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys", schema=SCHEMA)
    op.drop_index("ix_outbox_unpublished", table_name="outbox", schema=SCHEMA)
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_index(
        op.f("ix_abandoned_holds_attempted_at"), table_name="abandoned_holds", schema=SCHEMA
    )
    op.drop_table("abandoned_holds", schema=SCHEMA)
    op.drop_table("order_items", schema=SCHEMA)
    for index in (
        "ix_orders_release_pending",
        "ix_orders_placed_expires_at",
        "ix_orders_created_at",
        "ix_orders_vendor_id_created_at",
        "ix_orders_hospital_org_id_created_at",
    ):
        op.drop_index(op.f(index), table_name="orders", schema=SCHEMA)
    op.drop_table("orders", schema=SCHEMA)
