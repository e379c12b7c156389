"""Finding the knee: the highest offered rate at which a scenario still meets its SLO
(p99 at most a bound, errors under a share).

A geometric sweep up from a starting rate (down, if the start already fails) brackets
the knee between a passing and a failing rate; bisection then narrows the bracket
until it is tight enough or the probe budget is spent. The search is pure: it says
which rate to probe next and is told the outcome, so it is tested without a fleet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Every SLO's error bound (the "< 0.1% errors"); only the p99 bound differs.
MAX_ERROR_RATE = 0.001
# The sweep multiplies the rate by this while it passes (divides while it fails).
GROWTH = 2.0
# Bisection stops when (failing - passing) / passing is at most this.
TOLERANCE = 0.1


@dataclass(frozen=True, slots=True)
class Slo:
    p99_ms: float

    def met_by(self, p99_ms: float, error_rate: float) -> bool:
        return p99_ms <= self.p99_ms and error_rate < MAX_ERROR_RATE

    def describe(self) -> str:
        return f"p99 <= {self.p99_ms:g} ms and errors < {MAX_ERROR_RATE * 100:g}%"


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    rate: float
    passed: bool
    p99_ms: float
    error_rate: float
    throughput: float


@dataclass
class KneeSearch:
    start_rate: float
    min_rate: float
    max_rate: float
    max_probes: int
    probes: list[ProbeOutcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0 < self.min_rate <= self.start_rate <= self.max_rate:
            raise ValueError("need 0 < min_rate <= start_rate <= max_rate")
        if self.max_probes < 1:
            raise ValueError("need max_probes >= 1")

    @property
    def best_pass(self) -> float | None:
        passing = [p.rate for p in self.probes if p.passed]
        return max(passing) if passing else None

    @property
    def lowest_fail(self) -> float | None:
        failing = [p.rate for p in self.probes if not p.passed]
        return min(failing) if failing else None

    def next_rate(self) -> float | None:
        """The next rate to probe, or None when the search is over."""
        if len(self.probes) >= self.max_probes:
            return None
        passed, failed = self.best_pass, self.lowest_fail
        if not self.probes:
            return self.start_rate
        if failed is None:  # still climbing
            assert passed is not None
            if passed >= self.max_rate:
                return None
            return min(passed * GROWTH, self.max_rate)
        if passed is None:  # still descending
            if failed <= self.min_rate:
                return None
            return max(failed / GROWTH, self.min_rate)
        if failed <= passed:
            # Noise: a lower rate failed after a higher one passed. Trust the failure.
            return None
        if (failed - passed) / passed <= TOLERANCE:
            return None
        return round((passed + failed) / 2, 3)

    def record(self, outcome: ProbeOutcome) -> None:
        self.probes.append(outcome)

    @property
    def knee(self) -> float | None:
        """The highest passing rate below every failing one (None: nothing passed)."""
        failed = self.lowest_fail
        passing = [p.rate for p in self.probes if p.passed and (failed is None or p.rate < failed)]
        return max(passing) if passing else None

    def limited_by(self) -> str:
        """Why the search stopped where it did."""
        if self.knee is None:
            return f"even {self.min_rate:g}/s missed the SLO"
        if self.lowest_fail is None:
            if self.knee >= self.max_rate:
                return f"the search ceiling ({self.max_rate:g}/s) passed: the knee is higher"
            return "the probe budget ran out with every probe passing: the knee is higher"
        if len(self.probes) >= self.max_probes and self.next_rate_ignoring_budget() is not None:
            return "the probe budget ran out before the bracket closed"
        return f"{self.lowest_fail:g}/s missed the SLO"

    def next_rate_ignoring_budget(self) -> float | None:
        saved = self.max_probes
        self.max_probes = len(self.probes) + 1
        try:
            return self.next_rate()
        finally:
            self.max_probes = saved
