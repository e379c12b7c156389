"""The open-loop load generator.

Requests are due at fixed intended times (`index / rate` after the start), whatever
the server does: a slow answer never delays the next request's schedule. Latency is
measured from a request's intended time to its completion, so time spent waiting
to be sent (the generator behind, or the concurrency cap reached) counts against
the system under test instead of disappearing (no coordinated omission).
Latencies go into HDR histograms in microseconds.
"""

from __future__ import annotations

import asyncio
import gc
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

# Up to two minutes at three significant digits.
MAX_TRACKABLE_US = 120_000_000
# Scheduling starts this long after the call, so the first requests are not already late.
START_LEAD_SECONDS = 0.02
# Every timestamp: uvloop's loop.time() only has millisecond resolution (libuv's cached
# clock), too coarse for sub-millisecond differences between configurations.
clock = time.perf_counter
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
ABANDONED = "abandoned: not answered in time after the schedule"


class LatencyHistogram:
    """An HDR histogram of latencies in microseconds, read out in milliseconds."""

    def __init__(self) -> None:
        self._histogram = HdrHistogram(1, MAX_TRACKABLE_US, 3)

    def record_seconds(self, seconds: float) -> None:
        micros = min(max(int(seconds * 1_000_000), 1), MAX_TRACKABLE_US)
        self._histogram.record_value(micros)

    @property
    def count(self) -> int:
        return int(self._histogram.get_total_count())

    def percentile_ms(self, percentile: float) -> float:
        if self.count == 0:
            return 0.0
        return float(self._histogram.get_value_at_percentile(percentile)) / 1000.0

    @property
    def max_ms(self) -> float:
        return float(self._histogram.get_max_value()) / 1000.0 if self.count else 0.0

    @property
    def mean_ms(self) -> float:
        return float(self._histogram.get_mean_value()) / 1000.0 if self.count else 0.0

    def add(self, other: LatencyHistogram) -> None:
        self._histogram.add(other._histogram)

    def summary(self) -> dict[str, float]:
        figures = {f"p{p:g}_ms": round(self.percentile_ms(p), 3) for p in PERCENTILES}
        figures.update(
            max_ms=round(self.max_ms, 3), mean_ms=round(self.mean_ms, 3), count=self.count
        )
        return figures


def planned_sends(rate: float, duration: float) -> int:
    """How many requests a run of `duration` seconds at `rate` per second sends."""
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be positive")
    return max(1, math.floor(rate * duration + 1e-9))


def intended_offset(index: int, rate: float) -> float:
    """Seconds after the start at which request `index` is due."""
    return index / rate


def window_index(offset: float, window_seconds: float | None) -> int:
    """The window (e.g. the minute) a request belongs to, by its intended time."""
    if window_seconds is None:
        return 0
    return max(0, int(offset // window_seconds))


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None
    expected: frozenset[int] = frozenset({200})
    # A label for per-kind figures (the mixed scenario) and error accounting.
    kind: str = "request"
    # Given the body of every expected answer (e.g. to remember a new order's id).
    on_response: Callable[[bytes], None] | None = None


RequestSource = Callable[[int], PlannedRequest]


@dataclass
class KindStats:
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)


@dataclass
class RunResult:
    label: str
    offered_rate: float
    duration_s: float
    concurrency: int
    planned: int
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    # Intended time to the moment the request went out: the generator's or the cap's delay.
    send_lag: LatencyHistogram = field(default_factory=LatencyHistogram)
    windows: dict[int, LatencyHistogram] = field(default_factory=dict)
    kinds: dict[str, KindStats] = field(default_factory=dict)
    wall_s: float = 0.0
    generator_cpu_s: float = 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def error_rate(self) -> float:
        return self.error_count / self.planned if self.planned else 0.0

    @property
    def throughput(self) -> float:
        """Successful answers per second, over the schedule or, if answers came in after
        it ended (an overloaded run draining), until the last of them."""
        span = max(self.duration_s, self.wall_s)
        return self.ok / span if span else 0.0

    @property
    def generator_cpu_share(self) -> float:
        """The generator's CPU time over the run's wall time (1.0 = one core busy)."""
        return self.generator_cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def p99_ms(self) -> float:
        return self.latency.percentile_ms(99.0)

    @property
    def p50_ms(self) -> float:
        return self.latency.percentile_ms(50.0)

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "offered_rate": round(self.offered_rate, 2),
            "duration_s": self.duration_s,
            "wall_s": round(self.wall_s, 3),
            "concurrency": self.concurrency,
            "planned": self.planned,
            "ok": self.ok,
            "errors": dict(self.errors),
            "error_rate": round(self.error_rate, 6),
            "throughput": round(self.throughput, 2),
            "latency": self.latency.summary(),
            "send_lag": self.send_lag.summary(),
            "generator_cpu_s": round(self.generator_cpu_s, 3),
            "generator_cpu_share": round(self.generator_cpu_share, 3),
            "kinds": {
                kind: {"ok": stats.ok, "errors": dict(stats.errors), **stats.latency.summary()}
                for kind, stats in sorted(self.kinds.items())
            },
            "windows": {
                str(index): histogram.summary() for index, histogram in sorted(self.windows.items())
            },
        }


# The pool lets go of idle connections well before any server closes them (Flow's
# services after SERVER_KEEPALIVE_SECONDS; a bare uvicorn's default is 5 s), so no
# request between runs goes out on a connection being closed.
CLIENT_KEEPALIVE_SECONDS = 3.0


def make_session(concurrency: int) -> aiohttp.ClientSession:
    """The generator's one client: a keep-alive pool bounded by the concurrency cap."""
    connector = aiohttp.TCPConnector(
        limit=concurrency,
        limit_per_host=concurrency,
        keepalive_timeout=CLIENT_KEEPALIVE_SECONDS,
        ttl_dns_cache=None,
    )
    return aiohttp.ClientSession(connector=connector, auto_decompress=False)


async def perform(
    session: aiohttp.ClientSession, request: PlannedRequest, client_timeout: aiohttp.ClientTimeout
) -> str | None:
    """Send one request and read its answer: None when it is as expected, else the error
    it counts as (a status, a time-out, a broken connection, an unreadable answer)."""
    try:
        async with session.request(
            request.method,
            request.url,
            headers=request.headers,
            data=request.body,
            timeout=client_timeout,
        ) as response:
            body = await response.read()
            if response.status not in request.expected:
                return f"status {response.status}"
            if request.on_response is not None:
                try:
                    request.on_response(body)
                except Exception as exc:
                    # An answer the scenario cannot read is an error, not lost.
                    return f"unreadable answer: {type(exc).__name__}"
    except TimeoutError:
        return "timeout"
    except aiohttp.ClientError as exc:
        return f"connection: {type(exc).__name__}"
    return None


async def run_open_loop(
    session: aiohttp.ClientSession,
    source: RequestSource,
    *,
    label: str,
    rate: float,
    duration: float,
    concurrency: int,
    request_timeout: float,
    window_seconds: float | None = None,
) -> RunResult:
    """Send `rate` requests per second for `duration` seconds on the open-loop schedule.

    At most `concurrency` requests are in flight; a due request beyond that waits for a
    slot, its latency still counted from its intended time. Requests still waiting
    `request_timeout` seconds after the schedule ended are abandoned and counted as errors.
    """
    loop = asyncio.get_running_loop()
    result = RunResult(
        label=label,
        offered_rate=rate,
        duration_s=duration,
        concurrency=concurrency,
        planned=planned_sends(rate, duration),
    )
    gate = asyncio.Semaphore(concurrency)
    client_timeout = aiohttp.ClientTimeout(total=request_timeout)
    in_flight: set[asyncio.Task[None]] = set()

    async def send(index: int, intended: float, start: float) -> None:
        request = source(index)
        stats = result.kinds.setdefault(request.kind, KindStats())
        try:
            async with gate:
                result.send_lag.record_seconds(clock() - intended)
                outcome = await perform(session, request, client_timeout)
        except asyncio.CancelledError:
            # Given up on at the end of the run (never sent, or never answered in time).
            result.errors[ABANDONED] += 1
            stats.errors[ABANDONED] += 1
            raise
        if outcome is not None:
            result.errors[outcome] += 1
            stats.errors[outcome] += 1
            return
        latency = clock() - intended
        result.ok += 1
        stats.ok += 1
        result.latency.record_seconds(latency)
        stats.latency.record_seconds(latency)
        window = window_index(intended - start, window_seconds)
        result.windows.setdefault(window, LatencyHistogram()).record_seconds(latency)

    # The generator's own pauses would show up as server latency: keep the collector quiet.
    gc.collect()
    gc.freeze()
    cpu_before = time.process_time()
    start = clock() + START_LEAD_SECONDS
    try:
        for index in range(result.planned):
            intended = start + intended_offset(index, rate)
            delay = intended - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            task = loop.create_task(send(index, intended, start))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            _done, abandoned = await asyncio.wait(set(in_flight), timeout=request_timeout)
            for task in abandoned:
                task.cancel()
            if abandoned:
                await asyncio.wait(abandoned)
    finally:
        result.wall_s = clock() - start
        result.generator_cpu_s = time.process_time() - cpu_before
        gc.unfreeze()
    return result
