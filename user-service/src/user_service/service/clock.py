"""The current moment, timezone-aware UTC, as every rule of user-service reads it."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
