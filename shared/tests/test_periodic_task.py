"""PeriodicTask: runs its job every interval, survives failures, stops after the run in hand."""

from __future__ import annotations

import asyncio

from flow_shared.lifecycle import PeriodicTask


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
