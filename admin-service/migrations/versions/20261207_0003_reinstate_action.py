"""admin_actions may record a reinstatement; org_facts.suspension_changed_at

A reinstatement turns `suspended` off again, so the projection keeps when the latest
suspension or reinstatement happened and lets the latest one decide.

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

SCHEMA = "admin"


def upgrade() -> None:
    op.add_column(
        "org_facts",
        sa.Column("suspension_changed_at", sa.DateTime(timezone=True), nullable=True),
        schema=SCHEMA,
    )
    op.drop_constraint(
        op.f("ck_admin_actions_action"), "admin_actions", type_="check", schema=SCHEMA
    )
    op.create_check_constraint(
        op.f("ck_admin_actions_action"),
        "admin_actions",
        "action IN ('verify', 'suspend', 'reinstate')",
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("org_facts", "suspension_changed_at", schema=SCHEMA)
    op.execute("DELETE FROM admin.admin_actions WHERE action = 'reinstate'")
    op.drop_constraint(
        op.f("ck_admin_actions_action"), "admin_actions", type_="check", schema=SCHEMA
    )
    op.create_check_constraint(
        op.f("ck_admin_actions_action"),
        "admin_actions",
        "action IN ('verify', 'suspend')",
        schema=SCHEMA,
    )
