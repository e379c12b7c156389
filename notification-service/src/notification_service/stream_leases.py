"""How many live streams each user holds, counted across every process in Redis.

Each open stream holds a lease: a member of the user's sorted set
`<prefix>notifications:streams:user:<user_id>`, scored with the time (Redis's clock,
ms) its lease ends. Opening one more than SSE_MAX_STREAMS_PER_USER is refused (429)
rather than closing the oldest: an old tab that is still reading keeps working, and a
script that opens streams in a loop is stopped instead of knocking out its owner's. A
stream renews its lease each time it re-checks its token and gives it back when it
ends; one that vanished without that (a killed process) stops counting when its lease
runs out. The count is checked and taken in one Lua script, so concurrent opens on
several replicas can never exceed the cap.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from notification_service.errors import StreamLimitUnavailable, TooManyStreams

log = structlog.get_logger("notifications.stream_leases")

# KEYS[1]: the user's set. ARGV: stream id, cap, lease in ms. Returns 1 if taken, 0 if full.
_ACQUIRE_LUA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease)
return 1
"""

# KEYS[1]: the user's set. ARGV: stream id, lease in ms. Every lease in the set ends
# within `lease` from now, so the key may expire then too.
_RENEW_LUA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease)
return 1
"""


def user_streams_key(prefix: str, user_id: uuid.UUID) -> str:
    return f"{prefix}notifications:streams:user:{user_id}"


@dataclass(frozen=True, slots=True)
class StreamLease:
    """One open stream's place in its user's count."""

    leases: StreamLeases
    key: str
    stream_id: str

    async def renew(self) -> None:
        await self.leases.renew(self)

    async def release(self) -> None:
        await self.leases.release(self)


class StreamLeases:
    def __init__(self, redis: Redis, prefix: str, *, per_user: int, lease_seconds: float) -> None:
        self.redis = redis
        self.prefix = prefix
        self.per_user = per_user
        self.lease_ms = max(1, round(lease_seconds * 1000))
        self._acquire = redis.register_script(_ACQUIRE_LUA)
        self._renew = redis.register_script(_RENEW_LUA)

    async def acquire(self, user_id: uuid.UUID) -> StreamLease:
        """A lease for one more stream of the user; TooManyStreams when they hold the cap."""
        lease = StreamLease(self, user_streams_key(self.prefix, user_id), uuid.uuid4().hex)
        try:
            taken = await self._acquire(
                keys=[lease.key], args=[lease.stream_id, self.per_user, self.lease_ms]
            )
        except (RedisError, OSError) as exc:
            raise StreamLimitUnavailable("Live streams cannot be opened right now.") from exc
        if not int(taken):
            raise TooManyStreams(
                f"You already have {self.per_user} live streams open; close one first.",
                headers={"Retry-After": str(math.ceil(self.lease_ms / 1000))},
            )
        return lease

    async def renew(self, lease: StreamLease) -> None:
        try:
            await self._renew(keys=[lease.key], args=[lease.stream_id, self.lease_ms])
        except (RedisError, OSError) as exc:
            # The token re-check that comes with it fails closed on Redis; nothing more here.
            log.warning("stream_lease_renew_failed", error=repr(exc))

    async def release(self, lease: StreamLease) -> None:
        try:
            await self.redis.zrem(lease.key, lease.stream_id)
        except (RedisError, OSError) as exc:
            log.warning("stream_lease_release_failed", error=repr(exc))  # it runs out anyway
