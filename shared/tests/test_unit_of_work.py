"""The unit of work: one transaction, and what runs once it has ended (real PostgreSQL).

After-commit actions only ever see durable data; compensations run when the
transaction does not commit — the COMMIT itself failing included — and survive
cancellation; in a request, all of it happens before the client gets its answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import pytest
from fastapi import APIRouter, Request
from sqlalchemy import Table, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.testing import capture_logs

from flow_shared.app import create_service_app
from flow_shared.config import BaseServiceSettings
from flow_shared.db import Database
from flow_shared.errors import Conflict
from flow_shared.events.outbox import add_event, define_outbox_table
from flow_shared.testing.infra import TestInfra, asgi_client
from flow_shared.unit_of_work import (
    Action,
    DbSession,
    RequestUnitOfWork,
    UnitOfWork,
    current_unit_of_work,
    unit_of_work,
    unit_of_work_of,
)

if TYPE_CHECKING:
    from conftest import ScratchNotes

PRODUCER = "uow-test"
EVENT_TYPE = "test.noted"


@dataclass
class Scratch:
    """A schema of its own: `notes` and an outbox."""

    notes: ScratchNotes
    database: Database
    outbox: Table


@pytest.fixture
async def scratch(scratch_notes: ScratchNotes) -> Scratch:
    schema = scratch_notes.schema
    outbox = define_outbox_table(schema.metadata)
    await schema.create_tables()
    engine = schema.engine("uow-test", pool_size=4, max_overflow=4)
    return Scratch(scratch_notes, Database(engine), outbox)


async def write_note(session: AsyncSession, body: str) -> None:
    await session.execute(text("INSERT INTO notes (body) VALUES (:body)"), {"body": body})


async def write_event(session: AsyncSession, outbox: Table) -> None:
    await add_event(
        session,
        outbox,
        event_type=EVENT_TYPE,
        data={},
        producer=PRODUCER,
        publications={PRODUCER: frozenset({EVENT_TYPE})},
    )


def recording(ran: list[str], name: str) -> Action:
    async def record() -> None:
        ran.append(name)

    return record


async def commit_note(scratch: Scratch, body: str) -> None:
    async with unit_of_work(scratch.database) as uow:
        await write_note(uow.session, body)


Work = Callable[[UnitOfWork], Awaitable[None]]


async def in_unit_of_work(scratch: Scratch, work: Work, *, then_fail: bool = False) -> None:
    """Do `work` in a unit of work; with `then_fail`, the block raises after it."""
    async with unit_of_work(scratch.database) as uow:
        await work(uow)
        if then_fail:
            raise RuntimeError("the handler failed")


# -- outcomes ----------------------------------------------------------------------------


async def test_after_commit_runs_once_committed_and_sees_the_data_from_another_connection(
    scratch: Scratch,
) -> None:
    ran: list[str] = []
    seen_by_the_action: list[list[str]] = []

    async def look() -> None:
        seen_by_the_action.append(await scratch.notes.stored())

    async with unit_of_work(scratch.database) as uow:
        await write_note(uow.session, "kept")
        uow.after_commit(look)
        uow.after_commit(recording(ran, "committed"))
        uow.after_transaction(recording(ran, "ended"))
        uow.on_rollback(recording(ran, "compensated"))
        assert ran == []  # nothing runs before the block ends

    assert seen_by_the_action == [["kept"]]
    # After-transaction actions come last; compensations never run on a commit.
    assert ran == ["committed", "ended"]


async def test_compensations_run_in_reverse_when_the_block_raises(scratch: Scratch) -> None:
    ran: list[str] = []

    async def work(uow: UnitOfWork) -> None:
        await write_note(uow.session, "dropped")
        for name in ("first", "second", "third"):
            uow.on_rollback(recording(ran, name))
        uow.after_commit(recording(ran, "committed"))
        uow.after_transaction(recording(ran, "ended"))

    with pytest.raises(RuntimeError, match="the handler failed"):
        await in_unit_of_work(scratch, work, then_fail=True)

    assert ran == ["third", "second", "first", "ended"]
    assert await scratch.notes.stored() == []


async def test_a_failing_commit_compensates_too(scratch: Scratch) -> None:
    await commit_note(scratch, "taken")
    ran: list[str] = []

    async def work(uow: UnitOfWork) -> None:
        # Accepted now; the deferred constraint refuses it only at COMMIT.
        await write_note(uow.session, "taken")
        uow.on_rollback(recording(ran, "first"))
        uow.on_rollback(recording(ran, "second"))
        uow.after_commit(recording(ran, "committed"))
        uow.after_transaction(recording(ran, "ended"))

    with pytest.raises(IntegrityError, match="notes_body_unique"):
        await in_unit_of_work(scratch, work)

    assert ran == ["second", "first", "ended"]
    assert await scratch.notes.stored() == ["taken"]


async def test_a_failing_action_is_logged_and_the_others_still_run(scratch: Scratch) -> None:
    ran: list[str] = []

    async def broken() -> None:
        raise RuntimeError("inventory-service is down")

    async def committing(uow: UnitOfWork) -> None:
        uow.after_commit(recording(ran, "before"))
        uow.after_commit(broken)
        uow.after_commit(recording(ran, "after"))
        uow.after_transaction(recording(ran, "ended"))

    async def failing(uow: UnitOfWork) -> None:
        uow.on_rollback(recording(ran, "compensated last"))
        uow.on_rollback(broken)
        uow.on_rollback(recording(ran, "compensated first"))

    with capture_logs() as logs:
        await in_unit_of_work(scratch, committing)
        with pytest.raises(RuntimeError, match="the handler failed"):
            await in_unit_of_work(scratch, failing, then_fail=True)

    assert ran == ["before", "after", "ended", "compensated first", "compensated last"]
    failures = [log for log in logs if log["event"] == "unit_of_work_action_failed"]
    assert [(log["phase"], log["log_level"]) for log in failures] == [
        ("after_commit", "error"),
        ("rollback", "error"),
    ]


async def test_an_action_registered_too_late_to_run_is_refused(scratch: Scratch) -> None:
    ran: list[str] = []
    refusals: list[str] = []

    async def never() -> None:
        raise AssertionError("registered too late, yet it ran")

    def late(uow: UnitOfWork, *, then: str) -> Callable[[], Awaitable[None]]:
        async def register_more() -> None:
            for register in (uow.on_rollback, uow.after_commit):
                try:
                    register(never)
                except RuntimeError as refused:
                    refusals.append(str(refused))
            # Still to come: it runs (a compensation leaving work for after the
            # connection is back, as order-service's give_back_later does).
            uow.after_transaction(recording(ran, then))

        return register_more

    def too_late(uow: UnitOfWork) -> Callable[[], Awaitable[None]]:
        async def register_after_the_end() -> None:
            try:
                uow.after_transaction(never)
            except RuntimeError as refused:
                refusals.append(str(refused))

        return register_after_the_end

    async def committing(uow: UnitOfWork) -> None:
        uow.after_commit(late(uow, then="after the commit"))
        uow.after_transaction(too_late(uow))

    async def failing(uow: UnitOfWork) -> None:
        uow.on_rollback(late(uow, then="after the compensation"))
        uow.after_transaction(too_late(uow))

    await in_unit_of_work(scratch, committing)
    with pytest.raises(RuntimeError, match="the handler failed"):
        await in_unit_of_work(scratch, failing, then_fail=True)

    assert ran == ["after the commit", "after the compensation"]
    # Two refused in each phase's action, one in each after-transaction action.
    assert len(refusals) == 6
    assert all("has ended" in refusal for refusal in refusals)


async def test_a_cancelled_unit_of_work_still_runs_its_compensations(scratch: Scratch) -> None:
    ran: list[str] = []

    async def give_back() -> None:
        # The scope stays cancelled while the block exits: unshielded, this would not finish.
        await anyio.sleep(0.01)
        ran.append("given back")

    with anyio.CancelScope() as scope:
        async with unit_of_work(scratch.database) as uow:
            await write_note(uow.session, "abandoned")
            uow.on_rollback(give_back)
            uow.after_commit(recording(ran, "committed"))
            uow.after_transaction(recording(ran, "ended"))
            scope.cancel()  # as a request whose client went away
            await anyio.sleep_forever()

    assert scope.cancelled_caught
    assert ran == ["given back", "ended"]
    assert await scratch.notes.stored() == []


async def test_a_session_knows_its_unit_of_work_only_inside_it(scratch: Scratch) -> None:
    async with unit_of_work(scratch.database) as uow:
        assert unit_of_work_of(uow.session) is uow
        assert current_unit_of_work(uow.session) is uow

    assert unit_of_work_of(uow.session) is None
    with pytest.raises(RuntimeError, match="not in a unit of work"):
        current_unit_of_work(uow.session)
    # A session opened outside any (as a test or a migration does) has none.
    async with scratch.database.sessionmaker() as session:
        assert unit_of_work_of(session) is None


# -- the outbox's relays -----------------------------------------------------------------


async def test_only_a_committed_outbox_write_wakes_the_relays(scratch: Scratch) -> None:
    wakes: list[str] = []

    async def write_event_and_taken_note(uow: UnitOfWork) -> None:
        await write_event(uow.session, scratch.outbox)
        await write_note(uow.session, "taken")  # refused at COMMIT

    forget = scratch.database.wake_relays_on_commit(scratch.outbox, lambda: wakes.append("woken"))
    try:
        with pytest.raises(RuntimeError, match="the handler failed"):
            await in_unit_of_work(
                scratch, lambda uow: write_event(uow.session, scratch.outbox), then_fail=True
            )
        await commit_note(scratch, "taken")
        with pytest.raises(IntegrityError):
            await in_unit_of_work(scratch, write_event_and_taken_note)
        assert wakes == []  # neither rollback woke anyone; nor did a commit without events

        async with unit_of_work(scratch.database) as uow:
            await write_event(uow.session, scratch.outbox)
            assert wakes == []  # not before the COMMIT
        assert wakes == ["woken"]
    finally:
        forget()

    async with unit_of_work(scratch.database) as uow:
        await write_event(uow.session, scratch.outbox)
    assert wakes == ["woken"]  # forgotten relays are not woken


# -- in a request ------------------------------------------------------------------------

router = APIRouter()


@router.post("/notes/{body}", status_code=201)
async def add_note(
    body: str, uow: RequestUnitOfWork, session: DbSession, request: Request, fail: bool = False
) -> dict[str, bool]:
    ran: list[str] = request.app.state.ran
    await write_note(session, body)
    uow.after_commit(recording(ran, f"committed {body}"))
    uow.on_rollback(recording(ran, f"compensated {body}"))
    if fail:
        raise Conflict("The note was refused after it was written.")
    return {"same_session": session is uow.session}


class UowTestSettings(BaseServiceSettings):
    service_name: str = "uow-test"


class RecordResponseStart:
    """Notes in `ran` the moment the response starts going out to the client."""

    def __init__(self, app: ASGIApp, ran: list[str]) -> None:
        self.app = app
        self.ran = ran

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def noting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.ran.append(f"response {message['status']}")
            await send(message)

        await self.app(scope, receive, noting_send if scope["type"] == "http" else send)


async def test_a_request_has_one_unit_of_work_ended_before_its_response(
    infra: TestInfra, scratch: Scratch
) -> None:
    settings = UowTestSettings(
        **infra.settings_kwargs(
            "uow-test",
            database_url=scratch.notes.schema.url,
            db_schema=scratch.notes.schema.name,
        )
    )
    app = create_service_app(settings, title="uow test", routers=[router])
    ran: list[str] = []
    app.state.ran = ran
    async with asgi_client(RecordResponseStart(app, ran)) as client:
        created = await client.post("/notes/kept")
        assert created.status_code == 201
        assert created.json() == {"same_session": True}
        assert ran == ["committed kept", "response 201"]

        ran.clear()
        refused = await client.post("/notes/refused", params={"fail": True})
        assert refused.status_code == 409
        assert ran == ["compensated refused", "response 409"]

        # The handler succeeds but its COMMIT fails (the deferred unique constraint): the
        # client is told of a failure, never of the success, and only after compensating.
        ran.clear()
        failed_commit = await client.post("/notes/kept")
        assert failed_commit.status_code == 500
        assert failed_commit.headers["content-type"].startswith("application/problem+json")
        assert "notes_body_unique" not in failed_commit.text  # no internals leak
        assert ran == ["compensated kept", "response 500"]

    assert await scratch.notes.stored() == ["kept"]
