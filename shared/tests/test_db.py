"""One transaction per request, committed before the response is sent.

A success means the change is durable; a failure — raised by the handler or by
the commit itself — means nothing was kept.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI
from sqlalchemy import text

from flow_shared.app import create_service_app
from flow_shared.config import BaseServiceSettings
from flow_shared.db import Database, scan_on_one_core
from flow_shared.errors import Conflict
from flow_shared.testing.infra import TestInfra, asgi_client
from flow_shared.unit_of_work import DbSession

router = APIRouter()


@router.post("/notes/{body}", status_code=201)
async def add_note(body: str, session: DbSession, fail: str | None = None) -> dict[str, str]:
    await session.execute(text("INSERT INTO notes (body) VALUES (:body)"), {"body": body})
    await session.flush()
    if fail == "domain":
        raise Conflict("The note was refused after it was written.")
    if fail == "crash":
        raise RuntimeError("unexpected failure after the write")
    return {"body": body}


if TYPE_CHECKING:
    from conftest import ScratchNotes, ScratchSchema


class DbTestSettings(BaseServiceSettings):
    service_name: str = "db-test"


def notes_app(infra: TestInfra, scratch_notes: ScratchNotes) -> FastAPI:
    """A service whose database is the scratch schema with `notes`."""
    settings = DbTestSettings(
        **infra.settings_kwargs(
            "db-test",
            database_url=scratch_notes.schema.url,
            db_schema=scratch_notes.schema.name,
        )
    )
    return create_service_app(settings, title="db test", routers=[router])


async def test_success_is_committed_and_failures_keep_nothing(
    infra: TestInfra, scratch_notes: ScratchNotes
) -> None:
    app = notes_app(infra, scratch_notes)
    async with asgi_client(app) as client:
        created = await client.post("/notes/kept")
        assert created.status_code == 201
        # Visible to another connection as soon as the client has the answer.
        assert await scratch_notes.stored() == ["kept"]

        refused = await client.post("/notes/refused", params={"fail": "domain"})
        assert refused.status_code == 409
        crashed = await client.post("/notes/crashed", params={"fail": "crash"})
        assert crashed.status_code == 500
        assert "unexpected failure" not in crashed.text

        # The duplicate is only detected by COMMIT: the client must not be told 201.
        duplicate = await client.post("/notes/kept")
        assert duplicate.status_code == 500
        assert duplicate.headers["content-type"].startswith("application/problem+json")

    assert await scratch_notes.stored() == ["kept"]


async def test_connections_the_server_closed_are_never_handed_out(
    infra: TestInfra, scratch_notes: ScratchNotes
) -> None:
    """PostgreSQL restarted or a DBA's pg_terminate_backend: the next requests still succeed.

    Without a check at checkout, the first request on each dead pooled connection failed.
    """
    application_name = "db-test-" + uuid.uuid4().hex[:8]
    app = notes_app(infra, scratch_notes)
    async with asgi_client(app) as client:
        # Two requests at once leave two connections idle in the pool.
        engine = app.state.database.engine
        async with engine.connect() as first, engine.connect() as second:
            for conn in (first, second):
                await conn.execute(text(f"SET application_name = '{application_name}'"))
                await conn.commit()

        killed = await scratch_notes.schema.admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1",
            application_name,
        )
        assert killed == 2
        await asyncio.sleep(0.2)  # asyncpg reads the server's goodbye while the pool idles

        answers = [(await client.post(f"/notes/after-{n}")).status_code for n in range(4)]
        assert answers == [201] * 4
    assert await scratch_notes.stored() == [f"after-{n}" for n in range(4)]


async def test_a_background_scan_keeps_to_one_core_and_only_in_its_transaction(
    scratch_schema: ScratchSchema,
) -> None:
    engine = scratch_schema.engine("db-test-scan", pool_size=1, max_overflow=0)
    database = Database(engine)
    show = text("SHOW max_parallel_workers_per_gather")
    async with database.sessionmaker() as session:
        default = await session.scalar(show)
        await session.rollback()
        assert default != "0"  # the server's default allows parallel workers

        await scan_on_one_core(session)
        assert await session.scalar(show) == "0"
        await session.commit()
    # The same pooled connection (pool of one), the next transaction: back to the default.
    async with database.sessionmaker() as session:
        assert await session.scalar(show) == default
