"""Tables of payment-service, all in the "payments" schema."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from flow_shared.db import service_metadata


class Base(DeclarativeBase):
    metadata = service_metadata("payments")
