"""event projection: the audit of every event, and per-order and per-organisation facts

Revision ID: 20261124_0002
Revises: 20261124_0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261124_0002"
down_revision: str | None = "20261124_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "admin"


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("producer", sa.String(length=100), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("correlation_id", sa.String(length=128), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_events")),
        schema=SCHEMA,
    )
    op.create_index(op.f("ix_events_occurred_at"), "events", ["occurred_at"], schema=SCHEMA)
    op.create_index(
        op.f("ix_events_type_occurred_at"), "events", ["type", "occurred_at"], schema=SCHEMA
    )

    op.create_table(
        "order_facts",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("hospital_org_id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.String(length=20), nullable=False),
        sa.Column("total", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_order_facts")),
        schema=SCHEMA,
    )
    op.create_index(op.f("ix_order_facts_status"), "order_facts", ["status"], schema=SCHEMA)
    op.create_index(op.f("ix_order_facts_placed_at"), "order_facts", ["placed_at"], schema=SCHEMA)

    op.create_table(
        "org_facts",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("suspended", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_org_facts")),
        schema=SCHEMA,
    )
    op.create_index(op.f("ix_org_facts_kind"), "org_facts", ["kind"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index(op.f("ix_org_facts_kind"), table_name="org_facts", schema=SCHEMA)
    op.drop_table("org_facts", schema=SCHEMA)
    op.drop_index(op.f("ix_order_facts_placed_at"), table_name="order_facts", schema=SCHEMA)
    op.drop_index(op.f("ix_order_facts_status"), table_name="order_facts", schema=SCHEMA)
    op.drop_table("order_facts", schema=SCHEMA)
    op.drop_index(op.f("ix_events_type_occurred_at"), table_name="events", schema=SCHEMA)
    op.drop_index(op.f("ix_events_occurred_at"), table_name="events", schema=SCHEMA)
    op.drop_table("events", schema=SCHEMA)
