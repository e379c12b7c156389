"""notifications per recipient: one event, several organisations (or roles, or users)

`event_id` is no longer unique on its own: (event_id, org_id, user_id) is, NULL user_id
counting as one value (NULLS NOT DISTINCT, PostgreSQL 15+), so a redelivered event still
creates nothing new for any of its recipients. `audience_role` and `user_id` narrow a
notification to the org's members of one role or to one user (NULL: the whole org).
Existing rows keep both NULL: they were for their whole organisation.

Revision ID: 20261207_0004
Revises: 20261207_0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207_0004"
down_revision: str | None = "20261207_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "notifications"


def upgrade() -> None:
    op.add_column(
        "notifications", sa.Column("audience_role", sa.String(20), nullable=True), schema=SCHEMA
    )
    op.add_column("notifications", sa.Column("user_id", sa.Uuid(), nullable=True), schema=SCHEMA)
    # Created before the old constraint goes, so no moment allows a duplicate.
    op.create_index(
        "uq_notifications_event_recipient",
        "notifications",
        ["event_id", "org_id", "user_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_nulls_not_distinct=True,
    )
    op.drop_constraint("uq_notifications_event_id", "notifications", type_="unique", schema=SCHEMA)


def downgrade() -> None:
    # Only possible while no event has notified more than one recipient.
    op.create_unique_constraint(
        "uq_notifications_event_id", "notifications", ["event_id"], schema=SCHEMA
    )
    op.drop_index("uq_notifications_event_recipient", "notifications", schema=SCHEMA)
    op.drop_column("notifications", "user_id", schema=SCHEMA)
    op.drop_column("notifications", "audience_role", schema=SCHEMA)
