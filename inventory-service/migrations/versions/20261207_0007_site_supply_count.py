"""site_supply_count: how many sites have a runway, kept by a trigger, so that the admins'
runway list gives its total without counting 100,000 rows on every page

A statement-level trigger with transition tables adds the rows a statement inserted and
subtracts those it deleted (an INSERT ... ON CONFLICT DO NOTHING counts only the rows it
really inserted): one update of the counter per statement, whatever its size.

Revision ID: 20261207_0007
Revises: 20261207_0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207_0007"
down_revision: str | None = "20261207_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"

COUNT_FUNCTION = """
CREATE FUNCTION inventory.count_site_supply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE inventory.site_supply_count SET sites = sites + (SELECT count(*) FROM added);
    ELSE
        UPDATE inventory.site_supply_count SET sites = sites - (SELECT count(*) FROM removed);
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "site_supply_count",
        sa.Column("single", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("sites", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("single", name=op.f("ck_site_supply_count_single")),
        sa.CheckConstraint("sites >= 0", name=op.f("ck_site_supply_count_sites")),
        sa.PrimaryKeyConstraint("single", name=op.f("pk_site_supply_count")),
        schema=SCHEMA,
    )
    op.execute(
        "INSERT INTO inventory.site_supply_count (single, sites) "
        "SELECT true, count(*) FROM inventory.site_supply"
    )
    op.execute(COUNT_FUNCTION)
    op.execute(
        "CREATE TRIGGER site_supply_counted_insert AFTER INSERT ON inventory.site_supply "
        "REFERENCING NEW TABLE AS added "
        "FOR EACH STATEMENT EXECUTE FUNCTION inventory.count_site_supply()"
    )
    op.execute(
        "CREATE TRIGGER site_supply_counted_delete AFTER DELETE ON inventory.site_supply "
        "REFERENCING OLD TABLE AS removed "
        "FOR EACH STATEMENT EXECUTE FUNCTION inventory.count_site_supply()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER site_supply_counted_delete ON inventory.site_supply")
    op.execute("DROP TRIGGER site_supply_counted_insert ON inventory.site_supply")
    op.execute("DROP FUNCTION inventory.count_site_supply()")
    op.drop_table("site_supply_count", schema=SCHEMA)
