"""The catalogue cache in Redis: nearby pages keyed by a catalogue generation.

Every committed change of stock, reservations or the vendor projection bumps
(INCR) the generation. A nearby read takes the generation *before* it queries,
so a read racing a change can only fill a key of the old generation, which no
later read asks for: a change is visible on the next call, without deleting keys.
Redis trouble never fails a read (the database answers) and never blocks a write.
"""

from __future__ import annotations

import hashlib

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from flow_shared.metrics import business_counter

log = structlog.get_logger("inventory.cache")

NEARBY_CACHE = business_counter(
    "flow_inventory_nearby_cache_total",
    "catalog/nearby answers by cache outcome (hit, miss, error).",
    ("outcome",),
)


def generation_key(prefix: str) -> str:
    return f"{prefix}inventory:catalog-generation"


def nearby_key(prefix: str, generation: str, normalised_query: str) -> str:
    digest = hashlib.sha256(normalised_query.encode()).hexdigest()[:32]
    return f"{prefix}inventory:nearby:{generation}:{digest}"


async def current_generation(redis: Redis, prefix: str) -> str | None:
    """None when Redis cannot be read: the caller then skips the cache."""
    try:
        value = await redis.get(generation_key(prefix))
    except RedisError as exc:
        log.warning("catalog_generation_unreadable", error=repr(exc))
        return None
    return str(value) if value is not None else "0"


async def bump_generation(redis: Redis, prefix: str) -> None:
    """Call after the change has committed. A failure leaves cached pages until their TTL."""
    try:
        await redis.incr(generation_key(prefix))
    except RedisError as exc:
        log.error("catalog_generation_bump_failed", error=repr(exc))


async def read_cached(redis: Redis, key: str) -> bytes | None:
    try:
        value = await redis.get(key)
    except RedisError as exc:
        NEARBY_CACHE.labels("error").inc()
        log.warning("nearby_cache_unreadable", error=repr(exc))
        return None
    if value is None:
        NEARBY_CACHE.labels("miss").inc()
        return None
    NEARBY_CACHE.labels("hit").inc()
    return value.encode() if isinstance(value, str) else bytes(value)


async def store_cached(redis: Redis, key: str, body: bytes, ttl_seconds: int) -> None:
    if ttl_seconds <= 0:
        return
    try:
        await redis.set(key, body.decode(), ex=ttl_seconds)
    except RedisError as exc:
        log.warning("nearby_cache_unwritable", error=repr(exc))
