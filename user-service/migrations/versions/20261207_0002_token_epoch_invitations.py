"""token epoch per user, invitations; login failures move to Redis

users.tokens_valid_after: access tokens issued before it are refused (a password
change, a member's removal, a suspension). invitations: org admins add members
by e-mailed one-time token. users.failed_logins / locked_until are dropped: the
lockout now counts per (e-mail, client IP) in Redis with a sliding window.

Revision ID: users_0002
Revises: users_0001
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "users_0002"
down_revision: str | None = "users_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "users"


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("tokens_valid_after", sa.DateTime(timezone=True), nullable=True),
        schema=SCHEMA,
    )
    op.drop_constraint("ck_users_failed_logins_non_negative", "users", type_="check", schema=SCHEMA)
    op.drop_column("users", "failed_logins", schema=SCHEMA)
    op.drop_column("users", "locked_until", schema=SCHEMA)

    op.create_table(
        "invitations",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("org_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("full_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("invited_by", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_invitations"),
        sa.UniqueConstraint("token_hash", name="uq_invitations_token_hash"),
        sa.CheckConstraint("role IN ('staff', 'org_admin')", name="ck_invitations_role"),
        sa.CheckConstraint("email = lower(email)", name="ck_invitations_email_lowercase"),
        sa.ForeignKeyConstraint(
            ["org_id"],
            [f"{SCHEMA}.organizations.id"],
            name="fk_invitations_org_id_organizations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["invited_by"],
            [f"{SCHEMA}.users.id"],
            name="fk_invitations_invited_by_users",
            ondelete="SET NULL",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_invitations_org_id_created_at",
        "invitations",
        ["org_id", "created_at"],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_invitations_org_id_email", "invitations", ["org_id", "email"], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_index("ix_invitations_org_id_email", table_name="invitations", schema=SCHEMA)
    op.drop_index("ix_invitations_org_id_created_at", table_name="invitations", schema=SCHEMA)
    op.drop_table("invitations", schema=SCHEMA)
    op.add_column(
        "users",
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        schema=SCHEMA,
    )
    op.add_column(
        "users",
        sa.Column("failed_logins", sa.Integer(), server_default=sa.text("0"), nullable=False),
        schema=SCHEMA,
    )
    op.create_check_constraint(
        "ck_users_failed_logins_non_negative", "users", "failed_logins >= 0", schema=SCHEMA
    )
    op.drop_column("users", "tokens_valid_after", schema=SCHEMA)
