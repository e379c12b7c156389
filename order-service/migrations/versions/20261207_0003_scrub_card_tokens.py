"""scrub card tokens: order.placed outbox rows written before tokens left the events

Card orders used to carry `card_token` in order.placed's data, so every such outbox row
still holds one. It is removed from them all, published or not: an unpublished one then
reaches payment-service without a token and fails its payment ("missing card token"),
which fails the order and gives its stock back, rather than keeping the token.

Revision ID: 20261207_0003
Revises: 20261124_0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207_0003"
down_revision: str | None = "20261124_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "orders"


def upgrade() -> None:
    op.execute(
        sa.text(
            f"UPDATE {SCHEMA}.outbox SET payload = payload #- '{{data,card_token}}' "  # noqa: S608
            "WHERE payload->'data' ? 'card_token'"
        )
    )


def downgrade() -> None:
    # The tokens are gone for good; nothing to restore.
    pass
