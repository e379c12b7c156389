"""The one clock: what time it is, as every rule of every service reads it.

Business functions take the moment as an argument (`now`); what calls them — a
route, an event handler, a periodic job — reads it from here. A job takes a `Clock`
so a test can hand it its own and move time (licence expiry, ring time-outs, runway
levels) without waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)
