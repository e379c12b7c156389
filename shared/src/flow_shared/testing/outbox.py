"""Reading what a service wrote to its transactional outbox, in its service tier's tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def outbox_events(engine: AsyncEngine, event_type: str, **data: str) -> list[dict[str, Any]]:
    """The envelopes of one type in the service's outbox whose `data` has these values,
    oldest first. `engine` connects as the service's role with its schema on the
    search_path (`schema_engine`)."""
    conditions = " ".join(f"AND payload->'data'->>'{key}' = :{key}" for key in data)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    f"SELECT payload FROM outbox WHERE event_type = :t {conditions} "  # noqa: S608
                    "ORDER BY seq"
                ),
                {"t": event_type, **data},
            )
        ).all()
    return [row.payload for row in rows]
