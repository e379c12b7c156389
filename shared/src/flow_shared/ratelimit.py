"""Rate limiting in Redis: GCRA in one atomic Lua script.

A `RateLimit(requests, per_seconds, burst)` allows a sustained rate of
`requests` per `per_seconds`, and up to `burst` requests back to back
(`burst` defaults to `requests`). The Generic Cell Rate Algorithm keeps one
number per subject (its "theoretical arrival time"), read and written by a
single Lua script with Redis's own clock, so concurrent hits from any number
of gateway replicas can never allow more than the limit, and the key expires
by itself once the subject is back to a full burst.

Redis key: ``<prefix>rl:<rule>:<subject>``.

Policy when Redis is down or too slow to answer (written here, applied in `hit`):
- every rule states ``fail_closed``;
- a fail-closed rule (login, register, token, refresh: the routes that guard
  credentials) DENIES: `enforce` answers 503 problem+json
  (`rate-limiter-unavailable`) with a short `Retry-After`, because letting
  credential stuffing through unmetered is worse than a brief outage of login;
- a fail-open rule (everything else) ALLOWS the request, logs a warning and
  counts it in `flow_rate_limit_redis_failures_total`, because refusing all
  traffic when only the limiter is broken would turn a Redis blip into a
  platform outage;
- after a failure the limiter stops asking Redis for one second (a breaker),
  so a dead Redis does not add a connect timeout to every request.
"""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from flow_shared.errors import ServiceUnavailable, TooManyRequests
from flow_shared.metrics import business_counter
from flow_shared.resilience import BreakerState, CircuitBreaker, CircuitOpen

log = structlog.get_logger("flow.ratelimit")

# GCRA. KEYS[1]: the subject's key. ARGV[1]: emission interval in ms; ARGV[2]: burst.
# Returns {allowed (0/1), retry_after_ms, remaining}. Redis TIME is the one clock for
# every replica; numbers are returned as integers because Redis truncates Lua floats.
_GCRA_LUA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then
  tat = math.max(tonumber(stored), now)
end
local tolerance = interval * burst
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, math.ceil(allow_at - now), 0}
end
-- At least 1 ms: with a huge rate the interval vanishes against now's magnitude,
-- and PX 0 is an error.
local ttl = math.max(1, math.ceil(new_tat - now))
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', ttl)
return {1, 0, math.floor((now + tolerance - new_tat) / interval + 1e-9)}
"""

REDIS_FAILURES = business_counter(
    "flow_rate_limit_redis_failures_total",
    "Rate-limit checks decided by the Redis-down policy instead of Redis.",
    ("service", "rule", "policy"),
)
REJECTIONS = business_counter(
    "flow_rate_limit_rejections_total",
    "Requests refused because a rate limit was exceeded.",
    ("service", "rule"),
)

# Without Redis we cannot know when a fail-closed rule will allow again; this is a hint.
_UNAVAILABLE_RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True, slots=True)
class RateLimit:
    """`requests` per `per_seconds` sustained, up to `burst` at once (default `requests`)."""

    requests: int
    per_seconds: float
    _: KW_ONLY
    burst: int | None = None
    fail_closed: bool = False

    def __post_init__(self) -> None:
        if self.requests < 1 or self.per_seconds <= 0:
            raise ValueError("a rate limit needs requests >= 1 and per_seconds > 0")
        if self.burst is not None and self.burst < 1:
            raise ValueError("burst must be at least 1")

    @property
    def emission_interval_ms(self) -> float:
        return self.per_seconds * 1000.0 / self.requests

    @property
    def effective_burst(self) -> int:
        return self.burst if self.burst is not None else self.requests


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_seconds: float
    remaining: int
    # True when Redis could not be asked and the rule's fail policy decided.
    limiter_unavailable: bool = False

    @property
    def retry_after_header(self) -> str:
        """`Retry-After` is whole seconds (RFC 9110); round up so clients never come back early."""
        return str(max(1, math.ceil(self.retry_after_seconds)))


class RateLimiterUnavailable(ServiceUnavailable):
    code = "rate-limiter-unavailable"
    title = "Rate limiter unavailable"


class RateLimiter:
    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        service: str = "",
        redis_retry_after_seconds: float = 1.0,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.service = service
        self._script = redis.register_script(_GCRA_LUA)
        # One failure is enough: each check is a single cheap round trip.
        self._redis_breaker = CircuitBreaker(
            "redis-ratelimit",
            failure_threshold=1,
            reset_timeout=redis_retry_after_seconds,
            service=service,
        )

    def key(self, rule: str, subject: str) -> str:
        return f"{self.prefix}rl:{rule}:{subject}"

    async def hit(self, rule: str, subject: str, limit: RateLimit) -> Decision:
        """Count one request of `subject` against `rule`; never raises for Redis failures."""
        try:
            self._redis_breaker.before_call()
        except CircuitOpen:
            return self._redis_down(rule, limit, None)
        try:
            allowed, retry_after_ms, remaining = await self._script(
                keys=[self.key(rule, subject)],
                args=[repr(limit.emission_interval_ms), limit.effective_burst],
            )
        except (RedisError, OSError) as exc:
            self._redis_breaker.record_failure()
            return self._redis_down(rule, limit, exc)
        except BaseException:
            # Cancelled mid-probe: reopen rather than leave the breaker waiting on a probe.
            if self._redis_breaker.state is not BreakerState.CLOSED:
                self._redis_breaker.record_failure()
            raise
        self._redis_breaker.record_success()
        if not allowed:
            REJECTIONS.labels(self.service, rule).inc()
        return Decision(
            allowed=bool(allowed),
            retry_after_seconds=int(retry_after_ms) / 1000.0,
            remaining=int(remaining),
        )

    def _redis_down(self, rule: str, limit: RateLimit, exc: BaseException | None) -> Decision:
        policy = "closed" if limit.fail_closed else "open"
        REDIS_FAILURES.labels(self.service, rule, policy).inc()
        log.warning(
            "rate_limit_redis_unavailable",
            rule=rule,
            policy=policy,
            error=type(exc).__name__ if exc is not None else "breaker_open",
        )
        if limit.fail_closed:
            return Decision(
                allowed=False,
                retry_after_seconds=_UNAVAILABLE_RETRY_AFTER_SECONDS,
                remaining=0,
                limiter_unavailable=True,
            )
        return Decision(
            allowed=True,
            retry_after_seconds=0.0,
            remaining=limit.effective_burst,
            limiter_unavailable=True,
        )


async def enforce(limiter: RateLimiter, rule: str, subject: str, limit: RateLimit) -> Decision:
    """`hit`, then raise the HTTP answer for a denial: 429, or 503 for a fail-closed outage."""
    decision = await limiter.hit(rule, subject, limit)
    if decision.allowed:
        return decision
    headers = {"Retry-After": decision.retry_after_header}
    if decision.limiter_unavailable:
        raise RateLimiterUnavailable(
            "Rate limiting is unavailable, so this route is closed for a moment.",
            headers=headers,
        )
    raise TooManyRequests(
        f"Too many requests; retry in {decision.retry_after_header} s.", headers=headers
    )
