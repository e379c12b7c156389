"""The unit of work: one session, one transaction, and what runs once it has ended.

Everything that writes — a request handler, an event handler, a periodic job — does so
in one unit of work. Code that must react to the outcome registers the reaction on it
instead of listening to SQLAlchemy's session events:

- `after_commit`: only once the change is durable (publish to a live stream, move the
  catalogue's cache generation on, give back the stock of an order that just left);
- `on_rollback`: compensations when it does not commit, including a failing COMMIT
  (give back a hold taken at another service before the order row existed);
- `after_transaction`: either way, once the connection is back in the pool (writes
  that must survive a rollback open their own session then).

Events written into an outbox (`flow_shared.events.outbox.add_event`) wake the relays
of this process that publish that outbox once the transaction commits, so an event
leaves in milliseconds rather than at the relay's next poll.

Actions run in registration order (compensations in reverse), shielded from
cancellation: a request whose client went away must still give back what it took.
Each is best effort and logs its own outcome; one failing does not stop the others.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated

import anyio
import structlog
from fastapi import Depends, Request
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.db import Database, app_database

Action = Callable[[], Awaitable[None]]

log = structlog.get_logger("flow.unit_of_work")

_SESSION_KEY = "flow.unit_of_work"


class UnitOfWork:
    """One transaction on `session`, with the actions to run once it has ended."""

    def __init__(self, database: Database, session: AsyncSession) -> None:
        self.database = database
        self.session = session
        self._on_rollback: list[Action] = []
        self._after_commit: list[Action] = []
        self._after_transaction: list[Action] = []
        self._written_outboxes: set[Table] = set()
        # Once the transaction has ended no compensation or after-commit action can be
        # added (it would never run); after-transaction ones can until they start, so a
        # compensation may leave work for after the connection is back (give_back_later).
        self._ended = False
        self._finishing = False

    @staticmethod
    def _register(actions: list[Action], action: Action, *, closed: bool) -> None:
        if closed:
            raise RuntimeError("this unit of work has ended: an action registered now never runs")
        actions.append(action)

    def on_rollback(self, action: Action) -> None:
        """Run `action` if this unit of work does not commit (a compensation)."""
        self._register(self._on_rollback, action, closed=self._ended)

    def after_commit(self, action: Action) -> None:
        """Run `action` once this unit of work has committed."""
        self._register(self._after_commit, action, closed=self._ended)

    def after_transaction(self, action: Action) -> None:
        """Run `action` once the transaction has ended, committed or not.

        For writes that must survive a rollback; they open their own session only after
        this one's connection went back to the pool (requests waiting on an idempotency
        key may hold every other connection)."""
        self._register(self._after_transaction, action, closed=self._finishing)

    def events_written(self, outbox: Table) -> None:
        """Events went into `outbox` in this transaction: wake its relays on commit."""
        self._written_outboxes.add(outbox)

    async def _committed(self) -> None:
        self._ended = True
        for outbox in self._written_outboxes:
            self.database.wake_relays(outbox)
        await _run(self._after_commit, "after_commit")
        await self._finish()

    async def _rolled_back(self) -> None:
        self._ended = True
        await _run(list(reversed(self._on_rollback)), "rollback")
        await self._finish()

    async def _finish(self) -> None:
        self._finishing = True
        await _run(self._after_transaction, "after_transaction")


async def _run(actions: list[Action], phase: str) -> None:
    with anyio.CancelScope(shield=True):
        for action in actions:
            try:
                await action()
            except Exception:
                log.exception("unit_of_work_action_failed", phase=phase)


@asynccontextmanager
async def unit_of_work(database: Database) -> AsyncIterator[UnitOfWork]:
    """A session in one transaction: committed when the block ends, rolled back when it
    raises (a failing COMMIT raises here too, and compensates)."""
    async with database.sessionmaker() as session:
        uow = UnitOfWork(database, session)
        session.info[_SESSION_KEY] = uow
        try:
            async with session.begin():
                yield uow
        except BaseException:
            await uow._rolled_back()
            raise
        finally:
            session.info.pop(_SESSION_KEY, None)
    await uow._committed()


def unit_of_work_of(session: AsyncSession) -> UnitOfWork | None:
    """The unit of work `session` belongs to; None for a session opened outside one
    (a test's, a migration's)."""
    uow: UnitOfWork | None = session.info.get(_SESSION_KEY)
    return uow


def current_unit_of_work(session: AsyncSession) -> UnitOfWork:
    """Like `unit_of_work_of`, for code that cannot do without one (it registers
    actions)."""
    uow = unit_of_work_of(session)
    if uow is None:
        raise RuntimeError("this session is not in a unit of work")
    return uow


async def _request_unit_of_work(request: Request) -> AsyncIterator[UnitOfWork]:
    async with unit_of_work(app_database(request)) as uow:
        yield uow


# scope="function" runs the cleanup (the commit and its actions) before the response is
# sent, so a client never sees a success whose transaction later failed.
RequestUnitOfWork = Annotated[UnitOfWork, Depends(_request_unit_of_work, scope="function")]


async def _request_session(uow: RequestUnitOfWork) -> AsyncSession:
    return uow.session


# The request's session, in the request's one unit of work (the same one a handler that
# also asks for RequestUnitOfWork gets).
DbSession = Annotated[AsyncSession, Depends(_request_session)]
