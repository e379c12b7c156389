"""Figure 1c's verdict: a knee whose search never failed is only a lower bound, so the
share of a cached page in /health/live's throughput is judged only where that cannot
change the verdict."""

from __future__ import annotations

from flow_bench.knee import KneeSearch, ProbeOutcome, Slo
from flow_bench.measure import Knee, Measurement
from flow_bench.scenarios import share_figure


def _knee(capacity: float, *, ceiling: float) -> Knee:
    """The knee search of a system meeting the SLO up to `capacity`, searched up to
    `ceiling` (a capacity above it is never found: the knee is the ceiling)."""
    search = KneeSearch(start_rate=100, min_rate=1, max_rate=ceiling, max_probes=20)
    while (rate := search.next_rate()) is not None:
        passed = rate <= capacity
        search.record(
            ProbeOutcome(rate, passed, 10.0 if passed else 500.0, 0.0, min(rate, capacity))
        )
    return Knee("k", Slo(p99_ms=50.0), search, Measurement("k", rate=search.knee or 1))


def test_measured_knees_give_the_verdict_either_way() -> None:
    page, health = _knee(700, ceiling=5000), _knee(1000, ceiling=5000)
    assert share_figure(0.7, page=page, health=health, goal=0.5).met is True
    assert share_figure(0.3, page=page, health=health, goal=0.5).met is False


def test_a_health_knee_at_the_ceiling_cannot_prove_the_goal_met() -> None:
    page, health = _knee(700, ceiling=2000), _knee(9000, ceiling=2000)
    # /health/live may serve far more than the ceiling: the true share may be lower.
    assert share_figure(0.7, page=page, health=health, goal=0.5).met is None
    # But a share already under the goal only gets lower: not met.
    assert share_figure(0.3, page=page, health=health, goal=0.5).met is False


def test_a_page_knee_at_the_ceiling_cannot_prove_the_goal_missed() -> None:
    page, health = _knee(9000, ceiling=2000), _knee(9000, ceiling=2000)
    assert share_figure(0.3, page=page, health=health, goal=0.5).met is None
    assert share_figure(None, page=page, health=health, goal=0.5).met is None
