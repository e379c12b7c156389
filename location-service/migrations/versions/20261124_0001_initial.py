"""initial: hospital delivery sites with a PostGIS geography point

Revision ID: 20261124_0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261124_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "location"


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("location_source", sa.String(length=50), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("lat BETWEEN -90 AND 90", name=op.f("ck_sites_lat_range")),
        sa.CheckConstraint("lon BETWEEN -180 AND 180", name=op.f("ck_sites_lon_range")),
        sa.CheckConstraint("length(name) > 0", name=op.f("ck_sites_name_not_empty")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
        schema=SCHEMA,
    )
    # Derived from lat/lon by PostgreSQL so the point and the numbers never disagree.
    op.execute(
        f"ALTER TABLE {SCHEMA}.sites ADD COLUMN location geography(Point,4326) "
        "GENERATED ALWAYS AS ((ST_SetSRID(ST_MakePoint(lon, lat), 4326))::geography) STORED"
    )
    op.create_index(
        op.f("ix_sites_org_id_created_at"), "sites", ["org_id", "created_at"], schema=SCHEMA
    )
    op.create_index(
        op.f("ix_sites_location"),
        "sites",
        ["location"],
        schema=SCHEMA,
        postgresql_using="gist",
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sites_location"), table_name="sites", schema=SCHEMA)
    op.drop_index(op.f("ix_sites_org_id_created_at"), table_name="sites", schema=SCHEMA)
    op.drop_table("sites", schema=SCHEMA)
