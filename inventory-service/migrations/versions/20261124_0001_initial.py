"""initial: vendor projection, products, depots (PostGIS), stock, movements,
reservations, outbox and inbox

Revision ID: 20261124_0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geography
from sqlalchemy.dialects import postgresql

revision: str = "20261124_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"


def _created_at(name: str = "created_at") -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "vendors",
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("verified", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("suspended", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True),
        _created_at("updated_at"),
        sa.PrimaryKeyConstraint("vendor_id", name=op.f("pk_vendors")),
        schema=SCHEMA,
    )
    op.create_table(
        "products",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        _created_at(),
        sa.CheckConstraint(
            "category IN ('oxygen_cylinder', 'liquid_oxygen', 'concentrator', 'refill', "
            "'accessory')",
            name=op.f("ck_products_category"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("sku", name=op.f("uq_products_sku")),
        schema=SCHEMA,
    )
    op.create_index(op.f("ix_products_category"), "products", ["category"], schema=SCHEMA)
    op.create_table(
        "depots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=True),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column(
            "location",
            Geography(geometry_type="POINT", srid=4326, spatial_index=False),
            sa.Computed("(ST_SetSRID(ST_MakePoint(lon, lat), 4326))::geography", persisted=True),
            nullable=False,
        ),
        sa.Column("service_radius_km", sa.Float(), nullable=False),
        _created_at(),
        sa.CheckConstraint(
            "lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180",
            name=op.f("ck_depots_coordinates"),
        ),
        sa.CheckConstraint("service_radius_km > 0", name=op.f("ck_depots_service_radius_km")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_depots")),
        schema=SCHEMA,
    )
    op.create_index(op.f("ix_depots_vendor_id"), "depots", ["vendor_id"], schema=SCHEMA)
    # The spatial index ST_DWithin uses for the nearby search.
    op.create_index(
        "ix_depots_location", "depots", ["location"], schema=SCHEMA, postgresql_using="gist"
    )
    op.create_table(
        "stock",
        sa.Column("depot_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("on_hand", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("reserved", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("low_stock_threshold", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "low_stock_alerted", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        _created_at("updated_at"),
        sa.CheckConstraint(
            "reserved >= 0 AND reserved <= on_hand AND on_hand >= 0",
            name=op.f("ck_stock_quantities"),
        ),
        sa.CheckConstraint("low_stock_threshold >= 0", name=op.f("ck_stock_low_stock_threshold")),
        sa.ForeignKeyConstraint(
            ["depot_id"],
            [f"{SCHEMA}.depots.id"],
            name=op.f("fk_stock_depot_id_depots"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], [f"{SCHEMA}.products.id"], name=op.f("fk_stock_product_id_products")
        ),
        sa.PrimaryKeyConstraint("depot_id", "product_id", name=op.f("pk_stock")),
        schema=SCHEMA,
    )
    op.create_index("ix_stock_product_id", "stock", ["product_id"], schema=SCHEMA)
    op.create_table(
        "stock_movements",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("depot_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column("on_hand_after", sa.Integer(), nullable=False),
        sa.Column("reserved_after", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("reference", sa.String(length=100), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        _created_at("at"),
        sa.CheckConstraint(
            "kind IN ('set', 'adjust', 'reserve', 'release', 'commit', 'expire')",
            name=op.f("ck_stock_movements_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["depot_id"],
            [f"{SCHEMA}.depots.id"],
            name=op.f("fk_stock_movements_depot_id_depots"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            [f"{SCHEMA}.products.id"],
            name=op.f("fk_stock_movements_product_id_products"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_movements")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_stock_movements_depot_id_product_id_id",
        "stock_movements",
        ["depot_id", "product_id", "id"],
        schema=SCHEMA,
    )
    op.create_index("ix_stock_movements_reference", "stock_movements", ["reference"], schema=SCHEMA)
    op.create_table(
        "reservations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("depot_id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="held", nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        _created_at(),
        _created_at("updated_at"),
        sa.CheckConstraint(
            "status IN ('held', 'committed', 'released', 'expired')",
            name=op.f("ck_reservations_status"),
        ),
        sa.ForeignKeyConstraint(
            ["depot_id"], [f"{SCHEMA}.depots.id"], name=op.f("fk_reservations_depot_id_depots")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reservations")),
        sa.UniqueConstraint("order_id", name=op.f("uq_reservations_order_id")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_reservations_held_expires_at",
        "reservations",
        ["expires_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'held'"),
    )
    op.create_table(
        "reservation_items",
        sa.Column("reservation_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_reservation_items_quantity")),
        sa.ForeignKeyConstraint(
            ["reservation_id"],
            [f"{SCHEMA}.reservations.id"],
            name=op.f("fk_reservation_items_reservation_id_reservations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            [f"{SCHEMA}.products.id"],
            name=op.f("fk_reservation_items_product_id_products"),
        ),
        sa.PrimaryKeyConstraint("reservation_id", "product_id", name=op.f("pk_reservation_items")),
        schema=SCHEMA,
    )
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _created_at(),
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
        "inbox",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        _created_at("handled_at"),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("inbox", schema=SCHEMA)
    op.drop_index("ix_outbox_unpublished", table_name="outbox", schema=SCHEMA)
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("reservation_items", schema=SCHEMA)
    op.drop_index("ix_reservations_held_expires_at", table_name="reservations", schema=SCHEMA)
    op.drop_table("reservations", schema=SCHEMA)
    op.drop_index("ix_stock_movements_reference", table_name="stock_movements", schema=SCHEMA)
    op.drop_index(
        "ix_stock_movements_depot_id_product_id_id", table_name="stock_movements", schema=SCHEMA
    )
    op.drop_table("stock_movements", schema=SCHEMA)
    op.drop_index("ix_stock_product_id", table_name="stock", schema=SCHEMA)
    op.drop_table("stock", schema=SCHEMA)
    op.drop_index("ix_depots_location", table_name="depots", schema=SCHEMA)
    op.drop_index(op.f("ix_depots_vendor_id"), table_name="depots", schema=SCHEMA)
    op.drop_table("depots", schema=SCHEMA)
    op.drop_index(op.f("ix_products_category"), table_name="products", schema=SCHEMA)
    op.drop_table("products", schema=SCHEMA)
    op.drop_table("vendors", schema=SCHEMA)
