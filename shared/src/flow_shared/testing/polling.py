"""Waiting for asynchronous work (events, processes, the broker) to settle in tests."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]] | Callable[[], T | None],
    what: str = "condition",
    *,
    seconds: float = 30.0,
    interval: float = 0.1,
) -> T:
    """Poll `probe` until it returns something other than None or False, and return it.

    `seconds` only keeps a broken test from hanging: tests never assert on timing.
    """
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = probe()
        found = cast("T | None", await result if inspect.isawaitable(result) else result)
        if found is not None and found is not False:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(interval)
