"""shortages (declared by platform admins), sos_facts (open_sos), the outbox and
idempotency keys

Revision ID: 20261207_0004
Revises: 20261207_0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261207_0004"
down_revision: str | None = "20261207_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "admin"


def upgrade() -> None:
    op.create_table(
        "shortages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("radius_km", sa.Double(), nullable=False),
        sa.Column("categories", postgresql.ARRAY(sa.String(length=32)), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("declared_by", sa.Uuid(), nullable=False),
        sa.Column("ended_by", sa.Uuid(), nullable=True),
        sa.Column("recipient_org_ids", postgresql.ARRAY(sa.Uuid()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("lat BETWEEN -90 AND 90", name=op.f("ck_shortages_lat_range")),
        sa.CheckConstraint("lon BETWEEN -180 AND 180", name=op.f("ck_shortages_lon_range")),
        sa.CheckConstraint("radius_km > 0", name=op.f("ck_shortages_radius_positive")),
        sa.CheckConstraint(
            "cardinality(categories) > 0", name=op.f("ck_shortages_categories_not_empty")
        ),
        sa.CheckConstraint(
            "ends_at IS NULL OR ends_at > starts_at", name=op.f("ck_shortages_ends_after_start")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shortages")),
        schema=SCHEMA,
    )
    # Derived from lat/lon by PostgreSQL so the point and the numbers never disagree.
    op.execute(
        f"ALTER TABLE {SCHEMA}.shortages ADD COLUMN center geography(Point,4326) "
        "GENERATED ALWAYS AS ((ST_SetSRID(ST_MakePoint(lon, lat), 4326))::geography) STORED"
    )
    op.create_index(
        op.f("ix_shortages_center"),
        "shortages",
        ["center"],
        schema=SCHEMA,
        postgresql_using="gist",
    )
    op.create_index(op.f("ix_shortages_starts_at"), "shortages", ["starts_at"], schema=SCHEMA)
    op.create_index(
        op.f("ix_shortages_active_ends_at"),
        "shortages",
        ["ends_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("ended_at IS NULL AND ends_at IS NOT NULL"),
    )
    op.create_table(
        "sos_facts",
        sa.Column("sos_id", sa.Uuid(), nullable=False),
        sa.Column("hospital_org_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'fulfilled', 'unfilled', 'cancelled')",
            name=op.f("ck_sos_facts_status"),
        ),
        sa.PrimaryKeyConstraint("sos_id", name=op.f("pk_sos_facts")),
        schema=SCHEMA,
    )
    op.create_index(op.f("ix_sos_facts_status"), "sos_facts", ["status"], schema=SCHEMA)
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["seq"],
        schema=SCHEMA,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_idempotency_keys")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys", schema=SCHEMA)
    op.drop_index("ix_outbox_unpublished", table_name="outbox", schema=SCHEMA)
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_index(op.f("ix_sos_facts_status"), table_name="sos_facts", schema=SCHEMA)
    op.drop_table("sos_facts", schema=SCHEMA)
    op.drop_index(op.f("ix_shortages_active_ends_at"), table_name="shortages", schema=SCHEMA)
    op.drop_index(op.f("ix_shortages_starts_at"), table_name="shortages", schema=SCHEMA)
    op.drop_index(op.f("ix_shortages_center"), table_name="shortages", schema=SCHEMA)
    op.drop_table("shortages", schema=SCHEMA)
