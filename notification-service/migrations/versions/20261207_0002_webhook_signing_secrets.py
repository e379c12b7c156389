"""webhook signing secrets: one per organisation (encrypted), replacing the platform-wide one

Webhooks saved before this revision have no secret yet: their deliveries fail (never
unsigned, never with another organisation's secret) until the organisation saves its
webhook URL again or rotates its secret, which shows the new secret once.

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

SCHEMA = "notifications"


def upgrade() -> None:
    op.create_table(
        "webhook_signing_secrets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("encrypted_secret", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("retires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_signing_secrets")),
        schema=SCHEMA,
    )
    op.create_index(
        "uq_webhook_signing_secrets_current",
        "webhook_signing_secrets",
        ["org_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("retires_at IS NULL"),
    )
    op.create_index(
        "ix_webhook_signing_secrets_org_id", "webhook_signing_secrets", ["org_id"], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_table("webhook_signing_secrets", schema=SCHEMA)
