"""stock.reported_at: when the vendor last reported the row (set or adjust), which is what
goes stale; reservations and deliveries move updated_at but count nothing

Revision ID: 20261207_0004
Revises: 20261124_0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207_0004"
down_revision: str | None = "20261124_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"


def upgrade() -> None:
    op.add_column(
        "stock",
        sa.Column(
            "reported_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        schema=SCHEMA,
    )
    # The best earlier evidence of a report: the row's last change.
    op.execute("UPDATE inventory.stock SET reported_at = updated_at")


def downgrade() -> None:
    op.drop_column("stock", "reported_at", schema=SCHEMA)
