"""cylinder_deposit: prices carry deposit_per_cylinder (history too), quotes their
deposit_total and each line its deposit_per_unit; existing rows read 0

Revision ID: 20261208_0002
Revises: 20261124_0001
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261208_0002"
down_revision: str | None = "20261124_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "pricing"
MONEY = sa.Numeric(14, 2)

# (table, column, check constraint name) of every new money column.
_COLUMNS = (
    ("prices", "deposit_per_cylinder", "ck_prices_deposit_per_cylinder_non_negative"),
    ("price_history", "deposit_per_cylinder", None),
    ("quotes", "deposit_total", "ck_quotes_deposit_total_non_negative"),
    ("quote_items", "deposit_per_unit", "ck_quote_items_deposit_per_unit_non_negative"),
)


def upgrade() -> None:
    for table, column, check in _COLUMNS:
        # The server default lets existing rows (and an older writer) read 0.
        op.add_column(
            table,
            sa.Column(column, MONEY, server_default=sa.text("0"), nullable=False),
            schema=SCHEMA,
        )
        if check is not None:
            op.create_check_constraint(op.f(check), table, f"{column} >= 0", schema=SCHEMA)


def downgrade() -> None:
    for table, column, check in reversed(_COLUMNS):
        if check is not None:
            op.drop_constraint(op.f(check), table, type_="check", schema=SCHEMA)
        op.drop_column(table, column, schema=SCHEMA)
