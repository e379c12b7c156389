"""Circuit breaker: closed -> open after the threshold, fails fast while open, half-opens after
the reset timeout, closes on a good probe and re-opens on a bad one. Retry policy: backoff."""

from __future__ import annotations

import types

import pytest
from prometheus_client import REGISTRY

from flow_shared.resilience import (
    IDEMPOTENT_METHODS,
    BreakerState,
    CircuitBreaker,
    CircuitOpen,
    retrying,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(
        "inventory-service",
        failure_threshold=3,
        reset_timeout=10.0,
        service="resilience-test",
        clock=clock,
    )


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.before_call()
        breaker.record_failure()


def breaker_gauge(upstream: str = "inventory-service") -> float | None:
    return REGISTRY.get_sample_value(
        "flow_circuit_breaker_state", {"service": "resilience-test", "upstream": upstream}
    )


def test_stays_closed_below_the_threshold(breaker: CircuitBreaker) -> None:
    fail(breaker, 2)

    assert breaker.state is BreakerState.CLOSED
    breaker.before_call()


def test_only_consecutive_failures_count(breaker: CircuitBreaker) -> None:
    fail(breaker, 2)
    breaker.before_call()
    breaker.record_success()
    fail(breaker, 2)

    assert breaker.state is BreakerState.CLOSED


def test_opens_at_the_threshold_and_fails_fast(breaker: CircuitBreaker) -> None:
    fail(breaker, 3)

    assert breaker.state is BreakerState.OPEN
    assert breaker_gauge() == 2
    with pytest.raises(CircuitOpen) as refused:
        breaker.before_call()
    assert refused.value.status == 503
    assert "inventory-service" in refused.value.detail
    assert refused.value.headers["Retry-After"] == "10"


def test_stays_open_until_the_reset_timeout(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail(breaker, 3)

    clock.advance(9.9)

    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen):
        breaker.before_call()


def test_half_opens_after_the_reset_timeout_and_lets_one_probe_through(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail(breaker, 3)
    clock.advance(10)

    assert breaker.state is BreakerState.HALF_OPEN
    breaker.before_call()
    assert breaker_gauge() == 1
    # While the probe is out, everyone else still fails fast.
    with pytest.raises(CircuitOpen):
        breaker.before_call()


def test_a_good_probe_closes_the_breaker(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail(breaker, 3)
    clock.advance(10)
    breaker.before_call()

    breaker.record_success()

    assert breaker.state is BreakerState.CLOSED
    assert breaker_gauge() == 0
    breaker.before_call()
    breaker.before_call()
    # And it needs the full threshold again to open.
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED


def test_a_failed_probe_opens_the_breaker_again(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail(breaker, 3)
    clock.advance(10)
    breaker.before_call()

    breaker.record_failure()

    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    clock.advance(10)
    assert breaker.state is BreakerState.HALF_OPEN


def test_several_probes_when_configured(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "pricing-service", failure_threshold=1, reset_timeout=5, half_open_max_calls=2, clock=clock
    )
    fail(breaker, 1)
    clock.advance(5)

    breaker.before_call()
    breaker.before_call()
    with pytest.raises(CircuitOpen):
        breaker.before_call()


def test_a_lost_probe_does_not_wedge_the_breaker(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail(breaker, 3)
    clock.advance(10)
    breaker.before_call()  # the probe's caller is cancelled and never records an outcome

    clock.advance(60)

    breaker.before_call()


async def run_with_retries(error: Exception, calls: list[int]) -> None:
    async for attempt in retrying(
        attempts=3,
        retry_on=lambda exc: isinstance(exc, ConnectionError),
        initial_wait=0.001,
        max_wait=0.01,
    ):
        with attempt:
            calls.append(1)
            raise error


async def test_retrying_retries_what_the_caller_allows_then_reraises() -> None:
    calls: list[int] = []

    with pytest.raises(ConnectionError):
        await run_with_retries(ConnectionError("refused"), calls)

    assert len(calls) == 3


async def test_retrying_does_not_retry_other_errors() -> None:
    calls: list[int] = []

    with pytest.raises(ValueError, match="bad input"):
        await run_with_retries(ValueError("bad input"), calls)

    assert len(calls) == 1


def test_retry_waits_grow_and_stay_under_the_cap() -> None:
    policy = retrying(attempts=5, retry_on=lambda _exc: True, initial_wait=0.05, max_wait=1.0)

    for attempt_number in (1, 2, 3, 4, 5):
        waits = [
            policy.wait(types.SimpleNamespace(attempt_number=attempt_number))  # type: ignore[arg-type]
            for _ in range(200)
        ]
        assert min(waits) >= min(0.05 * 2 ** (attempt_number - 1), 1.0)
        assert max(waits) <= 1.0


def test_retry_jitter_is_proportional_to_the_backoff() -> None:
    policy = retrying(attempts=5, retry_on=lambda _exc: True, initial_wait=0.05, max_wait=1.0)

    for attempt_number in (1, 2, 3):
        base = 0.05 * 2 ** (attempt_number - 1)
        waits = [
            policy.wait(types.SimpleNamespace(attempt_number=attempt_number))  # type: ignore[arg-type]
            for _ in range(200)
        ]
        assert max(waits) <= 2 * base


def test_only_idempotent_methods_are_retryable() -> None:
    assert {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"} == IDEMPOTENT_METHODS
    assert "POST" not in IDEMPOTENT_METHODS
    assert "PATCH" not in IDEMPOTENT_METHODS
