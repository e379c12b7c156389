"""system placed: orders.placed_by and sos_requests.created_by are null when Flow itself
placed the order or opened the SOS for a hospital (auto-reorder on a low oxygen runway)

Revision ID: 20261207_0007
Revises: 20261207_0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261207_0007"
down_revision: str | None = "20261207_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "orders"


def upgrade() -> None:
    op.alter_column(
        "orders", "placed_by", existing_type=postgresql.UUID(), nullable=True, schema=SCHEMA
    )
    op.alter_column(
        "sos_requests", "created_by", existing_type=postgresql.UUID(), nullable=True, schema=SCHEMA
    )


def downgrade() -> None:
    # Fails while rows placed by Flow exist: they have no user to name.
    op.alter_column(
        "sos_requests", "created_by", existing_type=postgresql.UUID(), nullable=False, schema=SCHEMA
    )
    op.alter_column(
        "orders", "placed_by", existing_type=postgresql.UUID(), nullable=False, schema=SCHEMA
    )
