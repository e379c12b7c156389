"""products.gas_liters: litres of gaseous oxygen one unit delivers (null where none)

For the runway (hours of oxygen a site has left). Cylinders and their refills hold
their water capacity times the fill pressure (the figures their descriptions and the
suppliers' data sheets give); liquid oxygen about 700 L of gas per kg (README,
"Gas per product"). Concentrators make oxygen rather than store it, and accessories
hold none: null.

Revision ID: 20261207_0005
Revises: 20261207_0004
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207_0005"
down_revision: str | None = "20261207_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"

GAS_LITERS_BY_SKU: dict[str, int] = {
    "O2-CYL-1L": 200,
    "O2-CYL-2L": 400,
    "O2-CYL-5L": 1_000,
    "O2-CYL-10L": 1_500,
    "O2-CYL-20L": 3_000,
    "O2-CYL-40L": 6_000,
    "O2-CYL-46.7L": 7_000,
    "REFILL-1L": 200,
    "REFILL-2L": 400,
    "REFILL-5L": 1_000,
    "REFILL-10L": 1_500,
    "REFILL-40L": 6_000,
    "REFILL-46.7L": 7_000,
    "LOX-100KG": 70_000,
    "LOX-250KG": 175_000,
    "LOX-1000KG": 700_000,
    "LOX-5000KG": 3_500_000,
}


def upgrade() -> None:
    op.add_column(
        "products", sa.Column("gas_liters", sa.Numeric(12, 1), nullable=True), schema=SCHEMA
    )
    op.create_check_constraint(
        op.f("ck_products_gas_liters"),
        "products",
        "gas_liters IS NULL OR gas_liters > 0",
        schema=SCHEMA,
    )
    products = sa.table(
        "products", sa.column("sku", sa.String), sa.column("gas_liters"), schema=SCHEMA
    )
    for sku, gas_liters in GAS_LITERS_BY_SKU.items():
        op.execute(products.update().where(products.c.sku == sku).values(gas_liters=gas_liters))


def downgrade() -> None:
    op.drop_constraint("ck_products_gas_liters", "products", schema=SCHEMA)
    op.drop_column("products", "gas_liters", schema=SCHEMA)
