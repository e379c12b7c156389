"""Each service's memory over a long run: RSS (VmRSS of /proc/<pid>/status) of its
uvicorn process and workers, sampled at a fixed interval, and whether it stayed flat."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class MemorySeries:
    """(seconds since start, MiB) per service."""

    samples: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def add(self, at: float, service: str, mib: float) -> None:
        self.samples.setdefault(service, []).append((at, mib))

    def growth(self, window_s: float) -> dict[str, dict[str, float]]:
        """Median RSS over the first and over the last window, and the relative growth."""
        figures: dict[str, dict[str, float]] = {}
        for service, points in sorted(self.samples.items()):
            if not points:
                continue
            end = points[-1][0]
            first = [mib for at, mib in points if at <= points[0][0] + window_s]
            last = [mib for at, mib in points if at >= end - window_s]
            first_mib = float(statistics.median(first))
            last_mib = float(statistics.median(last))
            figures[service] = {
                "first_mib": round(first_mib, 1),
                "last_mib": round(last_mib, 1),
                "growth": round((last_mib - first_mib) / first_mib, 4) if first_mib else 0.0,
            }
        return figures

    def summary(self) -> dict[str, Any]:
        return {
            service: [[round(at, 1), round(mib, 1)] for at, mib in points]
            for service, points in sorted(self.samples.items())
        }


async def sample_rss(
    service_pids: Callable[[], Mapping[str, list[int]]],
    series: MemorySeries,
    *,
    interval_s: float,
    stop: asyncio.Event,
) -> None:
    """Sample until `stop` is set (run it as a task beside the load)."""
    started = time.monotonic()
    while not stop.is_set():
        at = time.monotonic() - started
        for service, pids in service_pids().items():
            sizes = [kib for kib in (rss_kib(pid) for pid in pids) if kib is not None]
            if sizes:
                series.add(at, service, sum(sizes) / 1024)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
