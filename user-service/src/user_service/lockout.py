"""Login lockout per (account e-mail, client IP), counted in Redis in a sliding window.

The pair is counted whether or not the e-mail has an account, with the same keys,
the same threshold and the same lock, so neither the answer nor its Retry-After
tells a guesser which e-mails exist. Failures older than the window no longer
count, and a right password clears the pair's count. Locking per pair (not per
account) keeps a guesser elsewhere from locking the real owner out.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

from flow_shared.errors import ServiceUnavailable
from user_service.config import Settings


def _pair_digest(email: str, client_ip: str) -> str:
    # Hashed: the keys name neither the e-mail nor the address.
    return hashlib.sha256(f"{email.strip().lower()}\n{client_ip}".encode()).hexdigest()


def _failures_key(settings: Settings, digest: str) -> str:
    return f"{settings.redis_key_prefix}user:login-failures:{digest}"


def _lock_key(settings: Settings, digest: str) -> str:
    return f"{settings.redis_key_prefix}user:login-lock:{digest}"


def _unavailable() -> ServiceUnavailable:
    # Fail closed, and alike for every e-mail: without the counter no guess is allowed.
    return ServiceUnavailable("Logins cannot be checked right now; try again shortly.")


async def seconds_locked(redis: Redis, settings: Settings, email: str, client_ip: str) -> int:
    """Seconds until this pair may try again; 0 when it is not locked."""
    try:
        remaining_ms = int(await redis.pttl(_lock_key(settings, _pair_digest(email, client_ip))))
    except RedisError as exc:
        raise _unavailable() from exc
    # -2: no lock; -1 (no expiry) cannot happen as the lock is always set with one.
    return math.ceil(remaining_ms / 1000) if remaining_ms > 0 else 0


async def record_failure(redis: Redis, settings: Settings, email: str, client_ip: str) -> bool:
    """Count one failure; the one that reaches the threshold within the window locks the
    pair for `lockout_seconds`. Returns whether the pair is now locked."""
    digest = _pair_digest(email, client_ip)
    failures_key = _failures_key(settings, digest)
    now_ms = int(time.time() * 1000)
    window_ms = settings.login_failure_window_seconds * 1000
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(failures_key, "-inf", now_ms - window_ms)
            pipe.zadd(failures_key, {f"{now_ms}:{uuid.uuid4().hex}": now_ms})
            pipe.zcard(failures_key)
            pipe.pexpire(failures_key, window_ms)
            _, _, failures, _ = await pipe.execute()
        if int(failures) < settings.lockout_threshold:
            return False
        async with redis.pipeline(transaction=True) as pipe:
            # NX: parallel failures past the threshold do not extend the lock.
            pipe.set(_lock_key(settings, digest), "1", ex=settings.lockout_seconds, nx=True)
            pipe.delete(failures_key)
            await pipe.execute()
    except RedisError as exc:
        raise _unavailable() from exc
    return True


async def clear_failures(redis: Redis, settings: Settings, email: str, client_ip: str) -> None:
    try:
        await redis.delete(_failures_key(settings, _pair_digest(email, client_ip)))
    except RedisError as exc:
        raise _unavailable() from exc
