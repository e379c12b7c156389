"""products: one that stores oxygen says how much (gas_liters), from now on

Products created through the API before gas_liters existed have none, and the runway
would count their units as no oxygen at all. The CHECK is added NOT VALID: it holds
for every product created or changed from now on, while the old rows stay readable until
a platform admin sets their gas (PATCH /api/v1/catalog/products/{id}); until then a
runway report counting one is refused (422 gas-unknown) rather than counted as empty.
`VALIDATE CONSTRAINT ck_products_gas_liters_known` once none is left makes it whole.

Revision ID: 20261208_0009
Revises: 20261208_0008
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261208_0009"
down_revision: str | None = "20261208_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"


def upgrade() -> None:
    op.execute(
        f"ALTER TABLE {SCHEMA}.products ADD CONSTRAINT ck_products_gas_liters_known"
        " CHECK (gas_liters IS NOT NULL"
        " OR category NOT IN ('oxygen_cylinder', 'liquid_oxygen', 'refill')) NOT VALID"
    )


def downgrade() -> None:
    op.drop_constraint("ck_products_gas_liters_known", "products", schema=SCHEMA)
