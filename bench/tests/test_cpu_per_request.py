"""CPU per request: the cores a run used over the requests it completed, in ms a request,
from the median run (the whole machine's, and each process group's)."""

from __future__ import annotations

from flow_bench.loadgen import RunResult
from flow_bench.measure import Measurement, RecordedRun


def _run(ok: int, cores: dict[str, float]) -> RecordedRun:
    # 10 s at the schedule: `ok` answers make ok / 10 requests a second.
    result = RunResult("orders", offered_rate=ok / 10, duration_s=10, concurrency=8, planned=ok)
    result.ok = ok
    return RecordedRun("3. Orders", "run", result, cores)


def test_cpu_per_request_is_cores_over_throughput_in_the_median_run() -> None:
    measurement = Measurement(
        "orders",
        rate=20,
        runs=[
            # 1.6 cores at 20/s: 80 ms an order; order-service 0.4 cores: 20 ms.
            _run(200, {"machine busy": 1.6, "order-service": 0.4, "postgresql": 0.2}),
            _run(200, {"machine busy": 1.0, "order-service": 0.3, "postgresql": 0.1}),
            _run(100, {"machine busy": 1.8, "order-service": 0.5, "postgresql": 0.3}),
        ],
    )
    cost = measurement.cpu_ms_per_request()
    assert cost is not None
    # Per request the runs cost 80, 50 and 180 ms: the median is the first.
    assert round(cost.machine_ms, 6) == 80.0
    assert {group: round(ms, 6) for group, ms in cost.groups_ms.items()} == {
        "order-service": 20.0,
        "postgresql": 10.0,
    }
    assert cost.top() == "order-service 20.0, postgresql 10.0"


def test_no_completed_request_or_no_machine_reading_has_no_cost() -> None:
    assert (
        Measurement("orders", rate=20, runs=[_run(0, {"machine busy": 1.0})]).cpu_ms_per_request()
        is None
    )
    assert (
        Measurement("orders", rate=20, runs=[_run(50, {"order-service": 1.0})]).cpu_ms_per_request()
        is None
    )
    assert Measurement("orders", rate=20).cpu_ms_per_request() is None
