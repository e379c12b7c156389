"""cylinders and cylinder_moves: the cylinder ledger

cylinders holds each serial-tracked oxygen cylinder of a vendor (unique serial per
vendor), its status and where it is: at its depot, in transit on an order, or held by a
hospital with the deposit it was charged. CHECKs tie the status to its place.
cylinder_moves keeps every change, append-only: a trigger refuses UPDATE and DELETE.
Another holds what a CHECK cannot see: a cylinder's product is an oxygen cylinder and
its depot is its vendor's own.

Revision ID: 20261208_0008
Revises: 20261207_0007
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261208_0008"
down_revision: str | None = "20261207_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"
STATUSES = "'full', 'empty', 'in_transit', 'at_hospital', 'quarantined', 'retired'"

APPEND_ONLY_FUNCTION = """
CREATE FUNCTION inventory.cylinder_moves_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'cylinder_moves are never updated or deleted';
END
$$
"""

BELONGS_FUNCTION = """
CREATE FUNCTION inventory.cylinder_belongs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM inventory.products
        WHERE id = NEW.product_id AND category = 'oxygen_cylinder'
    ) THEN
        RAISE EXCEPTION 'cylinder product % is not an oxygen cylinder', NEW.product_id
            USING ERRCODE = 'check_violation';
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM inventory.depots WHERE id = NEW.depot_id AND vendor_id = NEW.vendor_id
    ) THEN
        RAISE EXCEPTION 'depot % is not the cylinder vendor''s', NEW.depot_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$
"""


def _at(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "cylinders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("depot_id", sa.Uuid(), nullable=False),
        sa.Column("holder_org_id", sa.Uuid(), nullable=True),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        _at("held_since", nullable=True),
        sa.Column("deposit", sa.Numeric(14, 2), server_default=sa.text("0"), nullable=False),
        sa.Column("deposit_currency", sa.String(length=3), nullable=True),
        sa.Column("hydrotest_due", sa.Date(), nullable=False),
        _at("created_at"),
        _at("updated_at"),
        sa.CheckConstraint(f"status IN ({STATUSES})", name=op.f("ck_cylinders_status")),
        sa.CheckConstraint(
            "(status = 'at_hospital') = (holder_org_id IS NOT NULL)",
            name=op.f("ck_cylinders_holder"),
        ),
        sa.CheckConstraint(
            "(status = 'at_hospital') = (held_since IS NOT NULL)",
            name=op.f("ck_cylinders_held_since"),
        ),
        sa.CheckConstraint(
            "status <> 'in_transit' OR order_id IS NOT NULL",
            name=op.f("ck_cylinders_in_transit"),
        ),
        sa.CheckConstraint("deposit >= 0", name=op.f("ck_cylinders_deposit")),
        sa.ForeignKeyConstraint(
            ["product_id"],
            [f"{SCHEMA}.products.id"],
            name=op.f("fk_cylinders_product_id_products"),
        ),
        sa.ForeignKeyConstraint(
            ["depot_id"], [f"{SCHEMA}.depots.id"], name=op.f("fk_cylinders_depot_id_depots")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cylinders")),
        sa.UniqueConstraint("vendor_id", "serial", name=op.f("uq_cylinders_vendor_id_serial")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_cylinders_vendor_id_status", "cylinders", ["vendor_id", "status"], schema=SCHEMA
    )
    op.create_index(
        "ix_cylinders_holder_org_id_held_since",
        "cylinders",
        ["holder_org_id", "held_since"],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_cylinders_vendor_id_hydrotest_due",
        "cylinders",
        ["vendor_id", "hydrotest_due"],
        schema=SCHEMA,
    )
    op.create_index("ix_cylinders_order_id", "cylinders", ["order_id"], schema=SCHEMA)

    op.create_table(
        "cylinder_moves",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("cylinder_id", sa.Uuid(), nullable=False),
        _at("at"),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_org_id", sa.Uuid(), nullable=True),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("from_place", sa.String(length=60), nullable=True),
        sa.Column("to_place", sa.String(length=60), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["cylinder_id"],
            [f"{SCHEMA}.cylinders.id"],
            name=op.f("fk_cylinder_moves_cylinder_id_cylinders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cylinder_moves")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_cylinder_moves_cylinder_id_id",
        "cylinder_moves",
        ["cylinder_id", "id"],
        schema=SCHEMA,
    )
    op.create_index("ix_cylinder_moves_order_id", "cylinder_moves", ["order_id"], schema=SCHEMA)
    op.execute(BELONGS_FUNCTION)
    op.execute(
        "CREATE TRIGGER cylinder_belongs BEFORE INSERT OR UPDATE OF product_id, depot_id,"
        " vendor_id ON inventory.cylinders"
        " FOR EACH ROW EXECUTE FUNCTION inventory.cylinder_belongs()"
    )
    op.execute(APPEND_ONLY_FUNCTION)
    op.execute(
        "CREATE TRIGGER cylinder_moves_append_only BEFORE UPDATE OR DELETE "
        "ON inventory.cylinder_moves "
        "FOR EACH ROW EXECUTE FUNCTION inventory.cylinder_moves_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER cylinder_moves_append_only ON inventory.cylinder_moves")
    op.execute("DROP FUNCTION inventory.cylinder_moves_append_only()")
    op.drop_table("cylinder_moves", schema=SCHEMA)
    op.execute("DROP TRIGGER cylinder_belongs ON inventory.cylinders")
    op.execute("DROP FUNCTION inventory.cylinder_belongs()")
    op.drop_table("cylinders", schema=SCHEMA)
