"""The shared rate limiter against real Redis: exact limits, isolation, atomicity, recovery,
and the written policy for when Redis is down."""

from __future__ import annotations

import asyncio
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis

from flow_shared.errors import TooManyRequests
from flow_shared.ratelimit import (
    RateLimit,
    RateLimiter,
    RateLimiterUnavailable,
    enforce,
)
from flow_shared.testing.ports import free_port

if TYPE_CHECKING:
    from flow_shared.testing.infra import TestInfra


@pytest.fixture
async def redis(infra: TestInfra) -> AsyncIterator[Redis]:
    client = Redis.from_url(infra.redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def limiter(redis: Redis, infra: TestInfra) -> RateLimiter:
    # A prefix per test: rules and subjects never meet another test's counters.
    return RateLimiter(redis, f"{infra.redis_prefix}{uuid.uuid4().hex[:8]}:", service="test")


async def test_allows_exactly_the_limit_then_denies_with_retry_after(
    limiter: RateLimiter,
) -> None:
    limit = RateLimit(requests=5, per_seconds=60)

    decisions = [await limiter.hit("login", "10.0.0.1", limit) for _ in range(6)]

    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    denied = decisions[5]
    # GCRA at 5/min frees one slot every 12 s: that is when the client may come back.
    assert 10.0 < denied.retry_after_seconds <= 12.0
    assert denied.retry_after_header in {"11", "12"}


async def test_a_limit_far_above_any_real_rate_still_counts_and_allows(
    limiter: RateLimiter,
) -> None:
    # 10^9 a minute: the emission interval (6e-5 ms) is lost against the clock's
    # magnitude, which once made the script set a key with PX 0 (a Redis error).
    limit = RateLimit(requests=10**9, per_seconds=60)

    decisions = [await limiter.hit("bench", "10.0.0.7", limit) for _ in range(3)]

    assert all(d.allowed for d in decisions)
    assert not any(d.limiter_unavailable for d in decisions)


async def test_key_layout_is_prefix_rl_rule_subject(limiter: RateLimiter, redis: Redis) -> None:
    await limiter.hit("login", "10.0.0.9", RateLimit(requests=3, per_seconds=60))

    key = f"{limiter.prefix}rl:login:10.0.0.9"
    assert await redis.exists(key) == 1
    # The key expires by itself once the subject would be back to a full burst.
    assert 0 < await redis.pttl(key) <= 20_000


async def test_burst_smaller_than_requests_caps_back_to_back_requests(
    limiter: RateLimiter,
) -> None:
    limit = RateLimit(requests=100, per_seconds=60, burst=3)

    allowed = [(await limiter.hit("api", "user-1", limit)).allowed for _ in range(5)]

    assert allowed == [True, True, True, False, False]


async def test_subjects_and_rules_do_not_share_counters(limiter: RateLimiter) -> None:
    limit = RateLimit(requests=2, per_seconds=60)
    for _ in range(2):
        assert (await limiter.hit("login", "10.0.0.1", limit)).allowed
    assert not (await limiter.hit("login", "10.0.0.1", limit)).allowed

    assert (await limiter.hit("login", "10.0.0.2", limit)).allowed
    assert (await limiter.hit("register", "10.0.0.1", limit)).allowed


async def test_concurrent_hits_never_allow_more_than_the_limit(limiter: RateLimiter) -> None:
    limit = RateLimit(requests=10, per_seconds=60)

    decisions = await asyncio.gather(*(limiter.hit("api", "user-x", limit) for _ in range(50)))

    assert sum(d.allowed for d in decisions) == 10
    assert all(d.retry_after_seconds > 0 for d in decisions if not d.allowed)


async def test_recovers_after_the_period(limiter: RateLimiter) -> None:
    limit = RateLimit(requests=3, per_seconds=1)
    for _ in range(3):
        assert (await limiter.hit("api", "user-r", limit)).allowed
    denied = await limiter.hit("api", "user-r", limit)
    assert not denied.allowed

    await asyncio.sleep(1.05)

    after = [(await limiter.hit("api", "user-r", limit)).allowed for _ in range(4)]
    assert after == [True, True, True, False]


async def test_enforce_raises_429_with_retry_after(limiter: RateLimiter) -> None:
    limit = RateLimit(requests=1, per_seconds=30)
    await enforce(limiter, "login", "10.0.0.3", limit)

    with pytest.raises(TooManyRequests) as raised:
        await enforce(limiter, "login", "10.0.0.3", limit)

    assert raised.value.status == 429
    assert 1 <= int(raised.value.headers["Retry-After"]) <= 30


async def test_redis_down_fail_closed_denies_and_fail_open_allows() -> None:
    dead = Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5, socket_timeout=0.5
    )
    # Two limiters so that each policy meets a real connection failure, not the pause after one.
    closed_limiter = RateLimiter(dead, "flowtest:dead:", service="test")
    open_limiter = RateLimiter(dead, "flowtest:dead:", service="test")
    try:
        closed = await closed_limiter.hit("login", "10.0.0.1", RateLimit(5, 60, fail_closed=True))
        opened = await open_limiter.hit("api", "user-1", RateLimit(5, 60, fail_closed=False))
        # While Redis stays down (breaker open) the policy still holds, without waiting on it.
        closed_again = await closed_limiter.hit(
            "login", "10.0.0.1", RateLimit(5, 60, fail_closed=True)
        )
        opened_again = await open_limiter.hit("api", "user-1", RateLimit(5, 60))

        assert not closed.allowed
        assert closed.limiter_unavailable
        assert opened.allowed
        assert opened.limiter_unavailable
        assert not closed_again.allowed
        assert opened_again.allowed

        with pytest.raises(RateLimiterUnavailable) as raised:
            await enforce(closed_limiter, "login", "10.0.0.1", RateLimit(5, 60, fail_closed=True))
        assert raised.value.status == 503
        assert "Retry-After" in raised.value.headers
        assert (await enforce(open_limiter, "api", "user-1", RateLimit(5, 60))).allowed
    finally:
        await dead.aclose()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def test_limiter_asks_redis_again_once_it_is_back(infra: TestInfra) -> None:
    """After an outage the policy stops deciding: Redis is asked again after the pause."""
    port = free_port()
    real = urllib.parse.urlparse(infra.redis_url)
    client = Redis.from_url(
        f"redis://127.0.0.1:{port}{real.path}", socket_connect_timeout=0.5, socket_timeout=0.5
    )
    limiter = RateLimiter(
        client,
        f"{infra.redis_prefix}{uuid.uuid4().hex[:8]}:",
        service="test",
        redis_retry_after_seconds=0.2,
    )
    limit = RateLimit(requests=1, per_seconds=60, fail_closed=True)

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(
            real.hostname or "127.0.0.1", real.port or 6379
        )
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    during_outage = await limiter.hit("login", "10.0.0.4", limit)
    server = await asyncio.start_server(forward, "127.0.0.1", port)
    try:
        await asyncio.sleep(0.3)
        first = await limiter.hit("login", "10.0.0.4", limit)
        second = await limiter.hit("login", "10.0.0.4", limit)
    finally:
        # Client first: its connection closing ends the forwarding pipes before the server.
        await client.aclose()
        server.close()
        await server.wait_closed()

    assert not during_outage.allowed
    assert during_outage.limiter_unavailable
    assert first.allowed
    assert not first.limiter_unavailable
    assert not second.allowed
    assert not second.limiter_unavailable


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="requests"):
        RateLimit(requests=0, per_seconds=60)
    with pytest.raises(ValueError, match="burst"):
        RateLimit(requests=5, per_seconds=60, burst=0)
