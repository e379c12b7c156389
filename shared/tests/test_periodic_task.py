"""PeriodicTask: runs its job every interval, survives failures, stops after the run in hand;
a service app starts and stops its periodic tasks in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI

from flow_shared.app import create_service_app
from flow_shared.config import BaseServiceSettings
from flow_shared.lifecycle import PeriodicTask
from flow_shared.testing.infra import TestInfra, asgi_client

SHOWCASE = "shared-showcase"


async def test_runs_repeatedly_and_keeps_going_after_a_failure() -> None:
    runs: list[int] = []

    async def job() -> None:
        runs.append(len(runs))
        if len(runs) == 2:
            raise RuntimeError("one bad run")

    task = PeriodicTask("test", 0.01, job)
    await task.start()
    for _ in range(200):
        if len(runs) >= 4:
            break
        await asyncio.sleep(0.01)
    await task.stop()
    assert len(runs) >= 4
    stopped_at = len(runs)
    await asyncio.sleep(0.05)
    assert len(runs) == stopped_at


async def test_stop_lets_the_run_in_progress_finish() -> None:
    started = asyncio.Event()
    finished: list[bool] = []

    async def slow_job() -> None:
        started.set()
        await asyncio.sleep(0.2)
        finished.append(True)

    task = PeriodicTask("slow", 60, slow_job)
    await task.start()
    await started.wait()
    await task.stop()
    assert finished == [True]


class _RecordedTask(PeriodicTask):
    """A periodic task that notes in `log` when it is started and stopped."""

    def __init__(self, name: str, log: list[str]) -> None:
        super().__init__(name, 3600, _nothing)
        self.log = log

    async def start(self) -> None:
        self.log.append(f"start {self.name}")
        await super().start()

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        await super().stop()


async def _nothing() -> None:
    return None


async def _no_signing_keys() -> dict[str, Any]:
    return {"keys": []}


async def test_the_service_app_runs_its_periodic_tasks_between_its_hooks(infra: TestInfra) -> None:
    log: list[str] = []

    async def startup(app: FastAPI) -> None:
        log.append("startup")

    async def shutdown(app: FastAPI) -> None:
        log.append("shutdown")

    app = create_service_app(
        BaseServiceSettings(**infra.settings_kwargs(SHOWCASE, service_name=SHOWCASE)),
        title="periodic showcase",
        jwks_fetcher=_no_signing_keys,
        on_startup=[startup],
        on_shutdown=[shutdown],
        periodic=[
            lambda app: _RecordedTask("first", log),
            lambda app: _RecordedTask("second", log),
        ],
    )
    async with asgi_client(app):
        assert list(app.state.periodic_tasks) == ["first", "second"]

    # Started once the hooks have built what they use; stopped, last first, before the
    # hooks close it.
    assert log == [
        "startup",
        "start first",
        "start second",
        "stop second",
        "stop first",
        "shutdown",
    ]


async def test_two_periodic_tasks_of_one_name_refuse_to_start(infra: TestInfra) -> None:
    log: list[str] = []
    app = create_service_app(
        BaseServiceSettings(**infra.settings_kwargs(SHOWCASE, service_name=SHOWCASE)),
        title="periodic showcase",
        jwks_fetcher=_no_signing_keys,
        periodic=[
            lambda app: _RecordedTask("sweep", log),
            lambda app: _RecordedTask("sweep", log),
        ],
    )
    with pytest.raises(ValueError, match="two periodic tasks are named 'sweep'"):
        async with asgi_client(app):
            pass
    # The one that had started is stopped, not left running unnamed.
    assert log == ["start sweep", "stop sweep"]
