"""The knee search: which rates it probes and what it concludes, for known systems."""

from __future__ import annotations

import pytest
from flow_bench.knee import KneeSearch, ProbeOutcome, Slo


def run_search(search: KneeSearch, capacity: float) -> list[float]:
    """Drive the search against a system that meets the SLO up to `capacity`."""
    probed: list[float] = []
    while (rate := search.next_rate()) is not None:
        probed.append(rate)
        passed = rate <= capacity
        search.record(
            ProbeOutcome(
                rate=rate,
                passed=passed,
                p99_ms=10.0 if passed else 500.0,
                error_rate=0.0,
                throughput=min(rate, capacity),
            )
        )
    return probed


def test_climbs_geometrically_then_bisects_to_the_tolerance() -> None:
    search = KneeSearch(start_rate=100, min_rate=1, max_rate=10_000, max_probes=20)
    probed = run_search(search, capacity=700)
    assert probed[:4] == [100, 200, 400, 800]
    assert probed[4:] == [600, 700, 750]
    assert search.knee == 700
    assert search.lowest_fail == 750
    assert search.limited_by() == "750/s missed the SLO"


def test_descends_when_the_start_already_fails() -> None:
    search = KneeSearch(start_rate=100, min_rate=1, max_rate=10_000, max_probes=20)
    probed = run_search(search, capacity=30)
    assert probed[:3] == [100, 50, 25]
    assert search.knee is not None
    assert 25 <= search.knee <= 30


def test_a_system_below_the_minimum_has_no_knee() -> None:
    search = KneeSearch(start_rate=4, min_rate=1, max_rate=100, max_probes=20)
    probed = run_search(search, capacity=0.5)
    assert probed == [4, 2, 1]
    assert search.knee is None
    assert search.limited_by() == "even 1/s missed the SLO"


def test_the_ceiling_is_reported_when_everything_passes() -> None:
    search = KneeSearch(start_rate=100, min_rate=1, max_rate=300, max_probes=20)
    assert run_search(search, capacity=10_000) == [100, 200, 300]
    assert search.knee == 300
    assert "search ceiling" in search.limited_by()


def test_the_probe_budget_bounds_the_search() -> None:
    search = KneeSearch(start_rate=100, min_rate=1, max_rate=100_000, max_probes=3)
    assert run_search(search, capacity=5_000) == [100, 200, 400]
    assert search.knee == 400
    assert search.limited_by().startswith("the probe budget ran out")


def test_a_noisy_failure_below_a_pass_ends_the_search_on_the_failure() -> None:
    search = KneeSearch(start_rate=100, min_rate=1, max_rate=1_000, max_probes=20)
    search.record(ProbeOutcome(100, True, 10.0, 0.0, 100))
    search.record(ProbeOutcome(200, False, 90.0, 0.0, 180))
    search.record(ProbeOutcome(150, True, 20.0, 0.0, 150))
    search.record(ProbeOutcome(120, False, 80.0, 0.0, 110))  # noise: lower than a pass
    assert search.next_rate() is None
    assert search.knee == 100  # only passes below every failure count


def test_slo_needs_both_latency_and_errors() -> None:
    slo = Slo(p99_ms=50.0)
    assert slo.met_by(50.0, 0.0)
    assert not slo.met_by(50.1, 0.0)
    assert not slo.met_by(10.0, 0.001)  # "< 0.1%": 0.1% itself fails
    assert slo.met_by(10.0, 0.000_99)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start_rate": 0, "min_rate": 0, "max_rate": 10, "max_probes": 3},
        {"start_rate": 20, "min_rate": 1, "max_rate": 10, "max_probes": 3},
        {"start_rate": 5, "min_rate": 1, "max_rate": 10, "max_probes": 0},
    ],
)
def test_nonsense_bounds_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="need"):
        KneeSearch(**kwargs)  # type: ignore[arg-type]
