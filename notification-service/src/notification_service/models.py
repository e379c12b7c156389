"""Tables of notification-service, all in the "notifications" schema."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from flow_shared.db import service_metadata


class Base(DeclarativeBase):
    metadata = service_metadata("notifications")
