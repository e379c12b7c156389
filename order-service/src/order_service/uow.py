"""A unit of work that also knows what to undo elsewhere when it does not commit.

The placement saga holds stock at inventory-service before the order row
exists. If anything fails afterwards - a later step, the idempotency record,
or the COMMIT itself - the hold must be given back. `flow_shared.db.DbSession`
commits in a dependency's cleanup, where the handler can no longer react, so
handlers that call other services own their transaction through this context
manager instead. Leaving the block commits (before the answer is sent); if the
transaction does not commit, `on_rollback` actions run (compensations); once
it has committed, `after_commit` actions run (giving back the stock of an order
that just left the flow: never before its new status is durable).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.db import Database

Action = Callable[[], Awaitable[None]]

log = structlog.get_logger("order_service.uow")


class UnitOfWork:
    def __init__(self, database: Database, session: AsyncSession) -> None:
        self.database = database
        self.session = session
        self._on_rollback: list[Action] = []
        self._after_commit: list[Action] = []
        self._after_transaction: list[Action] = []

    def on_rollback(self, action: Action) -> None:
        """Run `action` if this unit of work does not commit (compensation)."""
        self._on_rollback.append(action)

    def after_commit(self, action: Action) -> None:
        """Run `action` once this unit of work has committed."""
        self._after_commit.append(action)

    def after_transaction(self, action: Action) -> None:
        """Run `action` once the transaction has ended, committed or not.

        For writes that must survive a rollback; they open their own session only
        after this one's connection went back to the pool (requests waiting on an
        idempotency key may hold every other connection).
        """
        self._after_transaction.append(action)

    async def _run(self, actions: list[Action], phase: str) -> None:
        # Shielded: a cancelled request must still give back what it took.
        with anyio.CancelScope(shield=True):
            for action in reversed(actions) if phase == "rollback" else actions:
                try:
                    await action()
                except Exception:
                    # Actions are best effort by design; each one logs its own outcome.
                    log.exception("unit_of_work_action_failed", phase=phase)


@asynccontextmanager
async def unit_of_work(database: Database) -> AsyncIterator[UnitOfWork]:
    async with database.sessionmaker() as session:
        uow = UnitOfWork(database, session)
        try:
            async with session.begin():
                yield uow
            # Leaving `begin()` committed; a failing COMMIT raises here and compensates too.
        except BaseException:
            await uow._run(uow._on_rollback, "rollback")
            await uow._run(uow._after_transaction, "after_transaction")
            raise
    await uow._run(uow._after_commit, "after_commit")
    await uow._run(uow._after_transaction, "after_transaction")
