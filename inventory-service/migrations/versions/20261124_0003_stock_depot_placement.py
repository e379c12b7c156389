"""stock carries its depot's vendor_id and location, kept by triggers, with a GiST index
on (product_id, location) so a product's nearby search is one index range scan

Revision ID: 20261124_0003
Revises: 20261124_0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geography

revision: str = "20261124_0003"
down_revision: str | None = "20261124_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"
INDEX = "ix_stock_product_id_location"

# Stock rows copy two facts of their depot. Whatever a writer sends for them (nothing,
# or a wrong value) is replaced by the depot's own, so they cannot disagree with it.
# FOR SHARE: a concurrent move of the depot waits for this row's transaction (and then
# carries the row along), or this waits for the move and copies the new values.
COPY_FUNCTION = """
CREATE FUNCTION inventory.stock_copy_depot_placement() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT d.vendor_id, d.location INTO NEW.vendor_id, NEW.location
    FROM inventory.depots AS d WHERE d.id = NEW.depot_id
    FOR SHARE;
    IF NOT FOUND AND NEW.depot_id IS NOT NULL THEN
        -- The foreign key's own error: it runs after NOT NULL, which the NULLs would fail.
        RAISE foreign_key_violation USING
            MESSAGE = format('insert or update on table "%s" violates foreign key '
                             'constraint "fk_stock_depot_id_depots"', TG_TABLE_NAME),
            DETAIL = format('Key (depot_id)=(%s) is not present in table "depots".',
                            NEW.depot_id),
            CONSTRAINT = 'fk_stock_depot_id_depots', TABLE = TG_TABLE_NAME,
            SCHEMA = TG_TABLE_SCHEMA;
    END IF;
    RETURN NEW;
END
$$
"""
# Only when a copied column is named: stock updates (quantities) never pay for it.
COPY_TRIGGER = """
CREATE TRIGGER stock_copy_depot_placement
BEFORE INSERT OR UPDATE OF depot_id, vendor_id, location ON inventory.stock
FOR EACH ROW EXECUTE FUNCTION inventory.stock_copy_depot_placement()
"""
# No endpoint moves a depot or gives it to another vendor; should a writer do it anyway,
# its stock follows (the UPDATE fires the trigger above, which reads the new depot row).
FOLLOW_FUNCTION = """
CREATE FUNCTION inventory.depot_placement_to_stock() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE inventory.stock SET vendor_id = NEW.vendor_id, location = NEW.location
    WHERE depot_id = NEW.id;
    RETURN NULL;
END
$$
"""
# AFTER: the generated depots.location has its new value only then.
FOLLOW_TRIGGER = """
CREATE TRIGGER depot_placement_to_stock
AFTER UPDATE OF vendor_id, lat, lon ON inventory.depots
FOR EACH ROW
WHEN (OLD.vendor_id IS DISTINCT FROM NEW.vendor_id
      OR OLD.lat IS DISTINCT FROM NEW.lat OR OLD.lon IS DISTINCT FROM NEW.lon)
EXECUTE FUNCTION inventory.depot_placement_to_stock()
"""


def upgrade() -> None:
    # btree_gist gives uuid a GiST operator class. Provisioning (a superuser) creates it;
    # the service role cannot, so say what is missing rather than fail on the index.
    has_btree_gist = op.get_bind().scalar(
        sa.text("SELECT 1 FROM pg_extension WHERE extname = 'btree_gist'")
    )
    if not has_btree_gist:
        raise RuntimeError(
            "extension btree_gist is missing: run the provisioning step "
            "(python -m flow_shared.provisioning) as a superuser first"
        )
    op.add_column("stock", sa.Column("vendor_id", sa.Uuid(), nullable=True), schema=SCHEMA)
    op.add_column(
        "stock",
        sa.Column(
            "location",
            Geography(geometry_type="POINT", srid=4326, spatial_index=False),
            nullable=True,
        ),
        schema=SCHEMA,
    )
    # ADD COLUMN holds an ACCESS EXCLUSIVE lock on stock until commit, so no row can be
    # written between this backfill and the trigger below; the trigger comes after it
    # so the backfill does not run it once per row.
    op.execute(
        "UPDATE inventory.stock AS s SET vendor_id = d.vendor_id, location = d.location "
        "FROM inventory.depots AS d WHERE d.id = s.depot_id"
    )
    op.alter_column("stock", "vendor_id", nullable=False, schema=SCHEMA)
    op.alter_column("stock", "location", nullable=False, schema=SCHEMA)
    op.execute(COPY_FUNCTION)
    op.execute(COPY_TRIGGER)
    op.execute(FOLLOW_FUNCTION)
    op.execute(FOLLOW_TRIGGER)
    # A product's stock near a point in one index scan (catalog/nearby).
    op.create_index(
        INDEX, "stock", ["product_id", "location"], schema=SCHEMA, postgresql_using="gist"
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="stock", schema=SCHEMA)
    op.execute("DROP TRIGGER depot_placement_to_stock ON inventory.depots")
    op.execute("DROP FUNCTION inventory.depot_placement_to_stock()")
    op.execute("DROP TRIGGER stock_copy_depot_placement ON inventory.stock")
    op.execute("DROP FUNCTION inventory.stock_copy_depot_placement()")
    op.drop_column("stock", "location", schema=SCHEMA)
    op.drop_column("stock", "vendor_id", schema=SCHEMA)
