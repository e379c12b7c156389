"""members.role: who an org-admins-only notification (licence expiry) e-mails

Projected from user.registered's `role`; NULL for members projected before.

Revision ID: 20261207_0003
Revises: 20261207_0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207_0003"
down_revision: str | None = "20261207_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "notifications"


def upgrade() -> None:
    op.add_column("members", sa.Column("role", sa.String(20), nullable=True), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("members", "role", schema=SCHEMA)
