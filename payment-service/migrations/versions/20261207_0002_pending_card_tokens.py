"""pending card tokens: handed over by order-service's internal call, not by events

Revision ID: 20261207_0002
Revises: 20261124_0001
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207_0002"
down_revision: str | None = "20261124_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "payments"
# As in the models: a provider token's shape, never a card number.
TOKEN_PATTERN = r"^tok_[a-z0-9_]+$"  # noqa: S105


def upgrade() -> None:
    op.create_table(
        "pending_card_tokens",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("token", sa.String(length=100), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"token ~ '{TOKEN_PATTERN}'", name=op.f("ck_pending_card_tokens_token")),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_pending_card_tokens")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_pending_card_tokens_received_at",
        "pending_card_tokens",
        ["received_at"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index(
        "ix_pending_card_tokens_received_at", table_name="pending_card_tokens", schema=SCHEMA
    )
    op.drop_table("pending_card_tokens", schema=SCHEMA)
