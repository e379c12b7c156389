"""Tables of the "location" schema: hospital delivery sites."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Computed,
    DateTime,
    Double,
    Index,
    String,
    Text,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

from flow_shared.db import service_metadata

SCHEMA = "location"

# The point is derived from lat/lon by PostgreSQL, so the two can never disagree.
SITE_POINT_EXPRESSION = "(ST_SetSRID(ST_MakePoint(lon, lat), 4326))::geography"


class GeographyPoint(UserDefinedType[Any]):
    """PostGIS geography(Point, 4326); only ever written by the database (generated column)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "geography(Point,4326)"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class Site(Base):
    """A hospital's delivery site, owned by one organisation."""

    __tablename__ = "sites"
    __table_args__ = (
        CheckConstraint("lat BETWEEN -90 AND 90", name="lat_range"),
        CheckConstraint("lon BETWEEN -180 AND 180", name="lon_range"),
        CheckConstraint("length(name) > 0", name="name_not_empty"),
        Index("ix_sites_org_id_created_at", "org_id", "created_at"),
        # For "nearest site" style queries (ST_DWithin / <-> on geography).
        Index("ix_sites_location", "location", postgresql_using="gist"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    org_id: Mapped[uuid.UUID]
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(Text)
    lat: Mapped[float] = mapped_column(Double)
    lon: Mapped[float] = mapped_column(Double)
    # "given" when the hospital sent coordinates, else the geocoder that placed the address.
    location_source: Mapped[str] = mapped_column(String(50))
    location: Mapped[Any] = mapped_column(
        GeographyPoint(), Computed(SITE_POINT_EXPRESSION, persisted=True), deferred=True
    )
    created_by: Mapped[uuid.UUID]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
