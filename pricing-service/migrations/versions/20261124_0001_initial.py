"""initial: prices, price_history, quotes and quote_items

Revision ID: 20261124_0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261124_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "pricing"
MONEY = sa.Numeric(14, 2)
PERCENT = sa.Numeric(5, 2)


def _money_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("unit_price", MONEY, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("delivery_fee_per_km", MONEY, nullable=False),
        sa.Column("min_delivery_fee", MONEY, nullable=False),
        sa.Column("emergency_surcharge_pct", PERCENT, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "prices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        *_money_columns(),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("unit_price >= 0", name=op.f("ck_prices_unit_price_non_negative")),
        sa.CheckConstraint(
            "delivery_fee_per_km >= 0", name=op.f("ck_prices_delivery_fee_per_km_non_negative")
        ),
        sa.CheckConstraint(
            "min_delivery_fee >= 0", name=op.f("ck_prices_min_delivery_fee_non_negative")
        ),
        sa.CheckConstraint(
            "emergency_surcharge_pct >= 0 AND emergency_surcharge_pct <= 100",
            name=op.f("ck_prices_emergency_surcharge_pct_range"),
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_prices_currency_iso")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prices")),
        sa.UniqueConstraint("vendor_id", "product_id", name=op.f("uq_prices_vendor_id_product_id")),
        schema=SCHEMA,
    )
    op.create_table(
        "price_history",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("price_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        *_money_columns(),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("changed_by", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["price_id"],
            [f"{SCHEMA}.prices.id"],
            name=op.f("fk_price_history_price_id_prices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_history")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_price_history_vendor_product_valid_from",
        "price_history",
        ["vendor_id", "product_id", "valid_from"],
        schema=SCHEMA,
    )
    op.create_table(
        "quotes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("depot_id", sa.Uuid(), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("delivery_lat", sa.Float(), nullable=False),
        sa.Column("delivery_lon", sa.Float(), nullable=False),
        sa.Column("distance_km", sa.Numeric(10, 1), nullable=False),
        sa.Column("subtotal", MONEY, nullable=False),
        sa.Column("delivery_fee", MONEY, nullable=False),
        sa.Column("surcharge", MONEY, nullable=False),
        sa.Column("tax_rate", sa.Numeric(6, 4), nullable=False),
        sa.Column("tax", MONEY, nullable=False),
        sa.Column("total", MONEY, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.Uuid(), nullable=True),
        sa.Column("requested_by_org", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "priority IN ('routine', 'urgent', 'emergency')", name=op.f("ck_quotes_priority")
        ),
        sa.CheckConstraint(
            "total = subtotal + delivery_fee + surcharge + tax",
            name=op.f("ck_quotes_total_is_sum_of_parts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quotes")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_quotes_vendor_id_created_at", "quotes", ["vendor_id", "created_at"], schema=SCHEMA
    )
    op.create_index("ix_quotes_expires_at", "quotes", ["expires_at"], schema=SCHEMA)
    op.create_table(
        "quote_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("quote_id", sa.Uuid(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", MONEY, nullable=False),
        sa.Column("line_total", MONEY, nullable=False),
        sa.Column("price_history_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_quote_items_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["quote_id"],
            [f"{SCHEMA}.quotes.id"],
            name=op.f("fk_quote_items_quote_id_quotes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["price_history_id"],
            [f"{SCHEMA}.price_history.id"],
            name=op.f("fk_quote_items_price_history_id_price_history"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quote_items")),
        sa.UniqueConstraint("quote_id", "line_no", name=op.f("uq_quote_items_quote_id_line_no")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("quote_items", schema=SCHEMA)
    op.drop_index("ix_quotes_expires_at", table_name="quotes", schema=SCHEMA)
    op.drop_index("ix_quotes_vendor_id_created_at", table_name="quotes", schema=SCHEMA)
    op.drop_table("quotes", schema=SCHEMA)
    op.drop_index(
        "ix_price_history_vendor_product_valid_from", table_name="price_history", schema=SCHEMA
    )
    op.drop_table("price_history", schema=SCHEMA)
    op.drop_table("prices", schema=SCHEMA)
