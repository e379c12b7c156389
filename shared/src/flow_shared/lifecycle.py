"""Background work inside a service process: `PeriodicTask` runs a job every interval.

Used for sweepers (expired holds, unconfirmed orders). A failing run is logged
and retried next interval; `stop()` lets a run in progress finish, so a
SIGTERM never leaves a half-done batch (each run is its own transaction).
Jobs must be safe with several processes running them (`SKIP LOCKED`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime

import structlog
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from flow_shared.db import Database
from flow_shared.unit_of_work import unit_of_work

log = structlog.get_logger("flow.lifecycle")


class PeriodicTask:
    def __init__(
        self,
        name: str,
        interval_seconds: float,
        run_once: Callable[[], Awaitable[object]],
        *,
        stop_timeout_seconds: float = 30.0,
    ) -> None:
        self.name = name
        self.interval_seconds = interval_seconds
        self._run_once = run_once
        self._stop_timeout = stop_timeout_seconds
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name=f"periodic:{self.name}")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self._stop_timeout)
        except TimeoutError:
            log.warning("periodic_task_stop_timeout", task=self.name)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._run_once()
            except Exception:
                log.exception("periodic_task_failed", task=self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_seconds)


async def run_in_batches(
    database: Database,
    batch: Callable[[AsyncSession], Awaitable[int]],
    *,
    batch_size: int,
) -> int:
    """Run `batch` (which handles at most `batch_size` rows) each in its own unit of work
    until one handles fewer: short transactions, so a big backlog never holds locks long.
    A batch that must react to its outcome reaches the unit of work with
    `current_unit_of_work(session)`. Returns the rows handled in all."""
    total = 0
    while True:
        async with unit_of_work(database) as uow:
            handled = await batch(uow.session)
        total += handled
        if handled < batch_size:
            return total


async def delete_older_than(
    session: AsyncSession,
    key: InstrumentedAttribute[object],
    age: InstrumentedAttribute[datetime],
    cutoff: datetime,
    *,
    batch_size: int,
) -> int:
    """Delete up to `batch_size` rows of `key`'s table whose `age` is before `cutoff`,
    oldest first; returns how many. SKIP LOCKED: several processes prune at once, each
    taking rows nobody else holds. One batch for `run_in_batches`."""
    table = key.class_
    due = select(key).where(age < cutoff).order_by(age).limit(batch_size)
    deleted = await session.execute(
        delete(table)
        .where(key.in_(due.with_for_update(skip_locked=True).scalar_subquery()))
        .returning(key)
        .execution_options(synchronize_session=False)
    )
    return len(deleted.all())
