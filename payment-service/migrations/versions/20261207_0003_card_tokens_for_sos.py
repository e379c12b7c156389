"""pending card tokens may be held for an SOS request: its order's id is not known until a
vendor accepts, so the column names what it holds, an order's or an SOS request's id

Revision ID: 20261207_0003
Revises: 20261207_0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261207_0003"
down_revision: str | None = "20261207_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "payments"


def upgrade() -> None:
    op.alter_column("pending_card_tokens", "order_id", new_column_name="held_for", schema=SCHEMA)


def downgrade() -> None:
    op.alter_column("pending_card_tokens", "held_for", new_column_name="order_id", schema=SCHEMA)
