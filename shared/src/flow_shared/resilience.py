"""Circuit breakers and retry policy for calls to other services.

A breaker per upstream: after `failure_threshold` consecutive failures it
opens and every call fails at once (no waiting on a dead peer); after
`reset_timeout` it lets `half_open_max_calls` probes through; a successful
probe closes it, a failed one opens it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from flow_shared.errors import ServiceUnavailable
from flow_shared.metrics import business_gauge

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

BREAKER_STATE = business_gauge(
    "flow_circuit_breaker_state",
    "Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open.",
    ("service", "upstream"),
)


class BreakerState(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


_STATE_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class CircuitOpen(ServiceUnavailable):
    code = "circuit-open"
    title = "Upstream unavailable"


class CircuitBreaker:
    def __init__(
        self,
        upstream: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 10.0,
        half_open_max_calls: int = 1,
        service: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.half_open_max_calls = half_open_max_calls
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self._probe_started_at = 0.0
        self._gauge = BREAKER_STATE.labels(service, upstream)
        self._gauge.set(0)

    @property
    def state(self) -> BreakerState:
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.reset_timeout
        ):
            return BreakerState.HALF_OPEN
        return self._state

    def before_call(self) -> None:
        """Raise `CircuitOpen` unless a call may go out now."""
        state = self.state
        if state is BreakerState.CLOSED:
            return
        if state is BreakerState.HALF_OPEN:
            if self._state is BreakerState.OPEN:
                self._set(BreakerState.HALF_OPEN)
                self._probes_in_flight = 0
            # A probe that never reported back (cancelled, say) must not wedge the breaker.
            if self._clock() - self._probe_started_at >= self.reset_timeout:
                self._probes_in_flight = 0
            if self._probes_in_flight < self.half_open_max_calls:
                self._probes_in_flight += 1
                self._probe_started_at = self._clock()
                return
        raise CircuitOpen(
            f"{self.upstream} is unavailable (circuit open); try again shortly.",
            headers={"Retry-After": str(max(1, round(self.reset_timeout)))},
        )

    def record_success(self) -> None:
        self._failures = 0
        self._probes_in_flight = 0
        if self._state is not BreakerState.CLOSED:
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
            self._probes_in_flight = 0
            self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        self._state = state
        self._gauge.set(_STATE_VALUE[state])


def retrying(
    *,
    attempts: int,
    retry_on: Callable[[BaseException], bool],
    initial_wait: float = 0.05,
    max_wait: float = 1.0,
) -> AsyncRetrying:
    """Exponential backoff with jitter; callers decide what is safe to retry."""
    return AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(multiplier=initial_wait, max=max_wait, jitter=initial_wait),
        retry=retry_if_exception(retry_on),
        reraise=True,
    )
