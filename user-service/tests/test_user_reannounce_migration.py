"""Migration users_0004 re-announces every member with its role (user.registered), so the
member projections of a platform upgraded from before roles were published learn them."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from flow_shared.events.envelope import EventEnvelope

MIGRATION = (
    Path(__file__).resolve().parents[1]
    / "migrations"
    / "versions"
    / "20261207_0004_reannounce_members.py"
)


def _migration() -> ModuleType:
    spec = importlib.util.spec_from_file_location("users_0004", MIGRATION)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_every_member_is_announced_again_with_its_role(
    client: httpx.AsyncClient, accounts: Any, users_db: AsyncEngine
) -> None:
    hospital = await accounts.register(client, kind="hospital", log_in=False)
    reannounce = _migration().reannounce

    # In a transaction that is rolled back: the shared database's outbox keeps nothing.
    async with users_db.connect() as conn, conn.begin() as transaction:
        written = await conn.run_sync(reannounce)
        rows = (
            await conn.execute(
                text(
                    "SELECT event_id, event_type, payload FROM users.outbox"
                    " WHERE event_type = 'user.registered'"
                    " AND payload->'data'->>'email' = :email ORDER BY seq"
                ),
                {"email": hospital.email},
            )
        ).all()
        users = await conn.scalar(text("SELECT count(*) FROM users.users"))
        await transaction.rollback()

    assert written == users
    # Registration's own announcement, then the migration's.
    assert len(rows) == 2
    again = EventEnvelope.model_validate(rows[1].payload)
    assert str(again.id) == str(rows[1].event_id)
    assert (again.type, again.producer, again.version) == ("user.registered", "user-service", 1)
    registered = EventEnvelope.model_validate(rows[0].payload)
    # The same facts as the registration's event (the service's shape), role included.
    assert again.data == registered.data
    assert again.data["role"] == "org_admin"
    assert again.data["org_id"] == hospital.organization["id"]
