"""The one clock: what time it is, as every rule of every service reads it.

Business functions take the moment as an argument (`now`); what calls them — a
route, an event handler, a periodic job — reads it from here. A job takes a `Clock`
so a test can hand it its own and move time (licence expiry, ring time-outs, runway
levels) without waiting. A route reads it as `Now`: the app's clock
(`create_service_app(clock=)`, the wall clock unless a test gives its own).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


async def _request_now(request: Request) -> datetime:
    clock: Clock = getattr(request.app.state, "clock", utcnow)
    return clock()


# The moment a request is handled, read once from the app's clock.
Now = Annotated[datetime, Depends(_request_now)]
