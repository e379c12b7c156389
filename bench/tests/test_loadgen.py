"""The open-loop generator: its schedule arithmetic, and that latency counts from each
request's intended time, so a slow server cannot hide behind the concurrency cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from flow_bench.loadgen import (
    LatencyHistogram,
    PlannedRequest,
    RequestSource,
    RunResult,
    intended_offset,
    make_session,
    planned_sends,
    run_open_loop,
    window_index,
)

SERVER_DELAY_SECONDS = 0.05


def test_a_run_sends_rate_times_duration_requests() -> None:
    assert planned_sends(100, 10) == 1000
    assert planned_sends(0.5, 3) == 1
    assert planned_sends(3, 0.1) == 1  # a run always sends at least one
    assert planned_sends(1.5, 1) == 1
    assert planned_sends(333.3, 3) == 999


def test_requests_are_due_at_fixed_intervals() -> None:
    assert [intended_offset(i, 4) for i in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_windows_follow_intended_time() -> None:
    assert window_index(0.0, 60) == 0
    assert window_index(59.999, 60) == 0
    assert window_index(60.0, 60) == 1
    assert window_index(301.0, 60) == 5
    assert window_index(123.0, None) == 0


@pytest.mark.parametrize(("rate", "duration"), [(0, 1), (1, 0), (-1, 5)])
def test_a_run_needs_a_positive_rate_and_duration(rate: float, duration: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        planned_sends(rate, duration)


def test_histogram_reads_percentiles_in_milliseconds() -> None:
    histogram = LatencyHistogram()
    for millis in range(1, 101):
        histogram.record_seconds(millis / 1000)
    assert histogram.count == 100
    assert histogram.percentile_ms(50) == pytest.approx(50, rel=0.01)
    assert histogram.percentile_ms(99) == pytest.approx(99, rel=0.01)
    assert histogram.max_ms == pytest.approx(100, rel=0.01)
    other = LatencyHistogram()
    other.record_seconds(2.0)
    histogram.add(other)
    assert histogram.count == 101
    assert histogram.max_ms == pytest.approx(2000, rel=0.01)
    assert LatencyHistogram().percentile_ms(99) == 0.0


@pytest.fixture
async def slow_server() -> AsyncIterator[str]:
    """Answers /slow after a fixed delay; /broken with a 500."""

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(SERVER_DELAY_SECONDS)
        return web.Response(text="ok")

    async def broken(_request: web.Request) -> web.Response:
        return web.Response(status=500)

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_get("/broken", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def run_briefly(
    source: RequestSource, *, rate: float, concurrency: int, request_timeout: float = 10
) -> RunResult:
    """A tenth of a second of open-loop load, on a pool as large as the cap."""
    async with make_session(concurrency) as session:
        return await run_open_loop(
            session,
            source,
            label="test",
            rate=rate,
            duration=0.1,
            concurrency=concurrency,
            request_timeout=request_timeout,
        )


async def test_waiting_for_the_cap_counts_from_the_intended_time(slow_server: str) -> None:
    """Ten requests due 10 ms apart, one at a time, each taking at least 50 ms: the k-th
    cannot finish before (k + 1) x 50 ms, though it was due at k x 10 ms, so the last
    one's latency is at least 9 x 50 + 50 - 90 = 410 ms. A closed-loop measurement would
    report about 50 ms for every request."""
    result = await run_briefly(
        lambda _i: PlannedRequest("GET", slow_server + "/slow", {}), rate=100, concurrency=1
    )
    assert result.planned == 10
    assert result.ok == 10
    assert result.error_count == 0
    assert result.latency.max_ms >= 410
    assert result.latency.percentile_ms(0) >= SERVER_DELAY_SECONDS * 1000
    # The wait for the cap shows as send lag too: the last one waited at least 360 ms.
    assert result.send_lag.max_ms >= 360


async def test_unexpected_statuses_are_errors_with_no_latency(slow_server: str) -> None:
    seen: list[str] = []

    def source(index: int) -> PlannedRequest:
        path = "/broken" if index % 2 else "/slow"
        return PlannedRequest(
            "GET",
            slow_server + path,
            {},
            kind=path,
            on_response=lambda _body: seen.append(path),
        )

    result = await run_briefly(source, rate=40, concurrency=4)
    assert result.planned == 4
    assert result.ok == 2
    assert result.errors == {"status 500": 2}
    assert result.error_rate == 0.5
    assert result.latency.count == 2
    assert seen == ["/slow", "/slow"]  # given only the expected answers
    assert result.kinds["/broken"].errors == {"status 500": 2}
    assert result.kinds["/slow"].ok == 2
    assert result.summary()["kinds"]["/slow"]["ok"] == 2


async def test_requests_never_answered_count_as_errors(slow_server: str) -> None:
    result = await run_briefly(
        lambda _i: PlannedRequest("GET", slow_server + "/slow", {}),
        rate=10,
        concurrency=1,
        request_timeout=0.001,
    )
    assert result.ok == 0
    assert result.error_count == result.planned == 1
