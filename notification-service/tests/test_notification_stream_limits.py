"""Live streams are capped per user (across processes, in Redis) and end within seconds
of the session's end: logout, password change or removal (the user's token epoch),
suspension of the organisation."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from flow_shared.auth import revoked_jti_key, suspended_org_key, user_epoch_key
from notification_service.errors import TooManyStreams
from notification_service.main import create_app
from notification_service.stream_leases import StreamLeases

if TYPE_CHECKING:
    from conftest import NotificationFlow, SseReader
    from redis.asyncio import Redis

    from flow_shared.testing.tokens import TokenIssuer
    from notification_service.config import Settings

RECHECK_SECONDS = 0.3
SETTINGS = {
    "sse_max_streams_per_user": 2,
    "sse_auth_recheck_seconds": RECHECK_SECONDS,
    "sse_heartbeat_seconds": 0.3,
    "sse_stream_lease_seconds": 3.0,
}


def bearer(token_issuer: TokenIssuer, claims: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_issuer.sign(claims)}"}


class StreamWatch:
    """Reads a stream in the background (heartbeats only) and tells whether it ended.

    A reader cut off by a timeout cannot be read again, hence a task of its own."""

    def __init__(self, stream: SseReader) -> None:
        self._task = asyncio.create_task(self._drain(stream))

    @staticmethod
    async def _drain(stream: SseReader) -> None:
        while (block := await stream.block(timeout=600)) is not None:
            assert not block.is_message

    async def ends_within(self, seconds: float) -> bool:
        done, _ = await asyncio.wait([self._task], timeout=seconds)
        if done:
            self._task.result()  # a message or a broken connection fails the test
        return bool(done)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await self._task


@asynccontextmanager
async def watching(*streams: SseReader) -> AsyncIterator[list[StreamWatch]]:
    watches = [StreamWatch(stream) for stream in streams]
    try:
        yield watches
    finally:
        for watch in watches:
            await watch.stop()


async def test_one_stream_over_the_cap_is_429_and_a_closed_one_frees_its_place(
    flow: NotificationFlow, token_issuer: TokenIssuer
) -> None:
    org, user = uuid.uuid4(), uuid.uuid4()

    def as_user(user_id: uuid.UUID = user) -> dict[str, str]:
        return token_issuer.headers(org_kind="vendor", org_id=org, user_id=user_id)

    async with flow.open_stream(headers=as_user()) as (first, _):
        async with flow.open_stream(headers=as_user()) as (second, _):
            async with flow.open_stream(headers=as_user()) as (third, _):
                await third.aread()
            async with flow.open_stream(headers=as_user(uuid.uuid4())) as (colleague, _):
                assert colleague.status_code == 200
        # The second stream is closed: its place is free again.

        async def reopened() -> bool:
            async with flow.open_stream(headers=as_user()) as (again, _):
                return again.status_code == 200

        await flow.eventually(reopened, what="a stream once another one closed")

    assert (first.status_code, second.status_code) == (200, 200)
    assert third.status_code == 429
    assert third.headers["content-type"] == "application/problem+json"
    assert third.headers["retry-after"] == "3"
    assert third.json()["type"].endswith("/too-many-streams")


async def test_the_cap_counts_streams_on_every_process(
    flow: NotificationFlow, token_issuer: TokenIssuer, make_settings: Callable[..., Settings]
) -> None:
    """Another replica of notification-service, on the same Redis, counts them too."""
    org, user = uuid.uuid4(), uuid.uuid4()
    other = create_app(make_settings(**SETTINGS), jwks_fetcher=token_issuer.fetch_jwks)

    def as_user() -> dict[str, str]:
        return token_issuer.headers(org_kind="vendor", org_id=org, user_id=user)

    async with (
        flow.serve(other) as other_url,
        flow.open_stream(headers=as_user()) as (here, _),
        flow.open_stream(headers=as_user(), base_url=other_url) as (there, _),
        flow.open_stream(headers=as_user(), base_url=other_url) as (third, _),
    ):
        await third.aread()
        assert (here.status_code, there.status_code, third.status_code) == (200, 200, 429)


async def test_a_stream_that_vanished_stops_counting_when_its_lease_runs_out(
    flow: NotificationFlow,
) -> None:
    """As when a process is killed with streams open: nothing gives their places back."""
    redis: Redis = flow.app.state.redis
    leases = StreamLeases(
        redis, f"{flow.settings.redis_key_prefix}lease-test:", per_user=2, lease_seconds=0.5
    )
    user = uuid.uuid4()
    await leases.acquire(user)
    await leases.acquire(user)
    with pytest.raises(TooManyStreams):
        await leases.acquire(user)

    await asyncio.sleep(0.7)
    lease = await leases.acquire(user)
    await lease.renew()
    await asyncio.sleep(0.3)
    await leases.acquire(user)  # the renewed one and this one: at the cap again

    with pytest.raises(TooManyStreams):
        await leases.acquire(user)


Revoke = Callable[["Redis", str, dict[str, Any]], Awaitable[Any]]


async def _logout(redis: Redis, prefix: str, claims: dict[str, Any]) -> Any:
    # What user-service's logout writes: the access token's jti, until it expires.
    return await redis.set(revoked_jti_key(prefix, claims["jti"]), "1", ex=900)


async def _suspend(redis: Redis, prefix: str, claims: dict[str, Any]) -> Any:
    return await redis.set(suspended_org_key(prefix, claims["org"]), "1", ex=900)


async def _new_epoch(redis: Redis, prefix: str, claims: dict[str, Any]) -> Any:
    # A password change or the removal from the org: every older token of the user ends.
    epoch = f"{claims['iat'] + 1:.6f}"
    return await redis.set(user_epoch_key(prefix, claims["sub"]), epoch, ex=900)


@pytest.mark.parametrize(
    "revoke",
    [
        pytest.param(_logout, id="logout"),
        pytest.param(_suspend, id="suspension"),
        pytest.param(_new_epoch, id="password-change-or-removal"),
    ],
)
async def test_a_stream_ends_within_seconds_of_its_session_ending(
    flow: NotificationFlow, token_issuer: TokenIssuer, revoke: Revoke
) -> None:
    claims = token_issuer.claims(org_kind="vendor", ttl=900)
    redis: Redis = flow.app.state.redis

    async with flow.open_stream(headers=bearer(token_issuer, claims)) as (response, stream):
        assert response.status_code == 200
        async with watching(stream) as [watch]:
            assert not await watch.ends_within(4 * RECHECK_SECONDS)  # alive while valid
            await revoke(redis, flow.settings.redis_key_prefix, claims)
            ended = await watch.ends_within(10 * RECHECK_SECONDS)
        # And the token no longer opens a new one.
        async with flow.open_stream(headers=bearer(token_issuer, claims)) as (again, _):
            await again.aread()

    assert ended, "the stream outlived the session"
    assert again.status_code == 401


async def test_a_stream_ended_by_revocation_gives_its_place_back(
    flow: NotificationFlow, token_issuer: TokenIssuer
) -> None:
    org, user = uuid.uuid4(), uuid.uuid4()
    claims = [
        token_issuer.claims(org_kind="vendor", org_id=org, user_id=user, ttl=900) for _ in range(2)
    ]
    redis: Redis = flow.app.state.redis
    async with (
        flow.open_stream(headers=bearer(token_issuer, claims[0])) as (_, first),
        flow.open_stream(headers=bearer(token_issuer, claims[1])) as (_, second),
        watching(first, second) as [first_watch, second_watch],
    ):
        await _logout(redis, flow.settings.redis_key_prefix, claims[0])
        assert await first_watch.ends_within(10 * RECHECK_SECONDS)
        fresh = token_issuer.headers(org_kind="vendor", org_id=org, user_id=user)

        async def reopened() -> bool:
            async with flow.open_stream(headers=fresh) as (again, _):
                return again.status_code == 200

        await flow.eventually(reopened, what="the revoked stream's place to be free")
        assert not await second_watch.ends_within(2 * RECHECK_SECONDS)  # the other lives on
