"""initial: notifications, member projection, preferences, deliveries, inbox

Revision ID: 20261124_0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261124_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "notifications"


def _now(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        _now("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("seq", name=op.f("uq_notifications_seq")),
        sa.UniqueConstraint("event_id", name=op.f("uq_notifications_event_id")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_notifications_org_id_seq", "notifications", ["org_id", "seq"], schema=SCHEMA
    )
    op.create_index(
        "ix_notifications_org_id_unread",
        "notifications",
        ["org_id", "seq"],
        schema=SCHEMA,
        postgresql_where=sa.text("read_at IS NULL"),
    )
    op.create_table(
        "members",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        _now("created_at"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_members")),
        schema=SCHEMA,
    )
    op.create_index("ix_members_org_id", "members", ["org_id"], schema=SCHEMA)
    op.create_table(
        "preferences",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("webhook_url", sa.String(length=2048), nullable=True),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        _now("updated_at"),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_preferences")),
        schema=SCHEMA,
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("notification_id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=2048), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _now("next_attempt_at"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        _now("created_at"),
        _now("updated_at"),
        sa.CheckConstraint("channel IN ('email', 'webhook')", name=op.f("ck_deliveries_channel")),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed')", name=op.f("ck_deliveries_status")
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_deliveries_attempts")),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            [f"{SCHEMA}.notifications.id"],
            name=op.f("fk_deliveries_notification_id_notifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["next_attempt_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_deliveries_notification_id", "deliveries", ["notification_id"], schema=SCHEMA
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        _now("handled_at"),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("inbox", schema=SCHEMA)
    op.drop_index("ix_deliveries_notification_id", table_name="deliveries", schema=SCHEMA)
    op.drop_index("ix_deliveries_due", table_name="deliveries", schema=SCHEMA)
    op.drop_table("deliveries", schema=SCHEMA)
    op.drop_table("preferences", schema=SCHEMA)
    op.drop_index("ix_members_org_id", table_name="members", schema=SCHEMA)
    op.drop_table("members", schema=SCHEMA)
    op.drop_index("ix_notifications_org_id_unread", table_name="notifications", schema=SCHEMA)
    op.drop_index("ix_notifications_org_id_seq", table_name="notifications", schema=SCHEMA)
    op.drop_table("notifications", schema=SCHEMA)
