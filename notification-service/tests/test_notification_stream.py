"""GET /api/v1/notifications/stream: server-sent events of the caller's organisation, live
(through Redis, after the commit), replaying what a reconnecting client missed
(Last-Event-ID), kept open by heartbeats for a reader (a proxy) with a longer read timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from types import FrameType
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from aiohttp import web

from flow_shared.testing.ports import free_port
from notification_service.main import create_app
from notification_service.shutdown import StopSignalHook

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import NotificationFlow

    from flow_shared.testing.infra import TestInfra
    from flow_shared.testing.tokens import TokenIssuer
    from notification_service.config import Settings

# Heartbeats well inside the 1 s read timeout used below.
SETTINGS = {"sse_heartbeat_seconds": 0.3, "sse_retry_milliseconds": 1500}


async def test_stream_delivers_what_is_heard_after_it_opened_to_that_org_only(
    flow: NotificationFlow,
) -> None:
    vendor, hospital = uuid.uuid4(), uuid.uuid4()
    async with (
        flow.open_stream(vendor) as (response, vendor_stream),
        flow.open_stream(hospital, headers=flow.headers(hospital, org_kind="hospital")) as (
            _,
            hospital_stream,
        ),
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"].startswith("no-cache")
        hint = await vendor_stream.block()
        assert hint is not None
        assert hint.retry == 1500
        await hospital_stream.block()

        placed = flow.events.order("order.placed", vendor_id=vendor, hospital_org_id=hospital)
        await flow.publish(placed)  # through RabbitMQ, the consumer, the commit, Redis
        message = await vendor_stream.message()
        confirmed = flow.events.order(
            "order.confirmed", vendor_id=vendor, hospital_org_id=hospital, eta_minutes=30
        )
        await flow.publish(confirmed)
        hospital_message = await hospital_stream.message()

    stored = await flow.wait_notification(placed.id)
    listed = (await flow.http.get("/api/v1/notifications", headers=flow.headers(vendor))).json()
    assert message.id == str(stored.id)
    assert message.event == "order.placed"
    assert message.json() == listed["items"][0]
    # The hospital's stream got its own event, never the vendor's.
    assert hospital_message.event == "order.confirmed"
    assert hospital_message.id == str((await flow.wait_notification(confirmed.id)).id)


async def test_last_event_id_replays_what_was_missed_then_goes_live(
    flow: NotificationFlow,
) -> None:
    vendor = uuid.uuid4()
    ids = []
    for _ in range(3):
        event = flow.events.order("order.placed", vendor_id=vendor, hospital_org_id=uuid.uuid4())
        await flow.handle(event)
        ids.append(str((await flow.wait_notification(event.id)).id))

    async with flow.open_stream(vendor, last_event_id=ids[0]) as (_, stream):
        replayed = [(await stream.message()).id, (await stream.message()).id]
        live = flow.events.order("order.cancelled", vendor_id=vendor, hospital_org_id=uuid.uuid4())
        await flow.handle(live)
        after = await stream.message()

    assert replayed == ids[1:]
    assert after.id == str((await flow.wait_notification(live.id)).id)
    assert after.event == "order.cancelled"


async def test_a_fresh_stream_replays_nothing_and_an_idle_one_sends_heartbeats(
    flow: NotificationFlow,
) -> None:
    vendor = uuid.uuid4()
    old = flow.events.order("order.placed", vendor_id=vendor, hospital_org_id=uuid.uuid4())
    await flow.handle(old)

    async with flow.open_stream(vendor) as (_, stream):
        blocks = [await stream.block() for _ in range(4)]

    assert all(block is not None and not block.is_message for block in blocks)
    assert stream.heartbeats >= 3


# A proxy in front (api-gateway, whose read_timeout for notification-service is 30 s by
# default) gives up on a response that sends nothing for its read timeout, as a client
# with that read timeout does: the stream's promise is to send something more often.
# (That the gateway holds such a stream open is api-gateway/tests' to show.)


async def test_stream_stays_open_for_a_reader_while_idle_past_its_read_timeout(
    flow: NotificationFlow,
) -> None:
    vendor = uuid.uuid4()
    async with flow.open_stream(vendor, read_timeout=1.0) as (response, stream):
        assert response.status_code == 200
        # Idle for 2.5 s, two and a half read timeouts: only heartbeats keep it open.
        loop = asyncio.get_running_loop()
        idle_until = loop.time() + 2.5
        while loop.time() < idle_until:
            block = await stream.block()
            assert block is not None, "the idle stream ended"
            assert not block.is_message
        event = flow.events.order("order.placed", vendor_id=vendor, hospital_org_id=uuid.uuid4())
        await flow.handle(event)
        message = await stream.message()

    assert stream.heartbeats >= 3
    assert message.id == str((await flow.wait_notification(event.id)).id)


async def test_a_read_timeout_below_the_heartbeat_gives_up_on_the_idle_stream(
    flow: NotificationFlow,
) -> None:
    """Why SSE_HEARTBEAT_SECONDS must stay under the gateway's read timeout."""
    gave_up = False
    async with flow.open_stream(read_timeout=0.1) as (response, stream):
        assert response.status_code == 200
        try:
            while await stream.block(timeout=10) is not None:
                pass
        except httpx.ReadTimeout:
            gave_up = True

    assert gave_up


async def test_stream_ends_when_the_token_expires(
    flow: NotificationFlow, token_issuer: TokenIssuer
) -> None:
    headers = {"Authorization": f"Bearer {token_issuer.token(org_kind='vendor', ttl=2)}"}

    async with flow.open_stream(headers=headers) as (response, stream):
        assert response.status_code == 200
        blocks = 0
        while await stream.block(timeout=10) is not None:
            blocks += 1

    assert blocks >= 1  # the retry hint, then heartbeats until the token ran out


async def test_server_stop_ends_open_streams(
    make_settings: Callable[..., Settings], token_issuer: TokenIssuer, flow: NotificationFlow
) -> None:
    """What SIGTERM triggers (through StopSignalHook): every stream ends, so the server's
    graceful shutdown does not wait on clients that never leave."""
    app = create_app(make_settings(**SETTINGS), jwks_fetcher=token_issuer.fetch_jwks)
    async with flow.serve(app) as url, flow.open_stream(base_url=url) as (_, stream):
        await stream.block()
        app.state.notification_hub.close_all("server stopping")
        rest = [block async for block in _until_end(stream)]

    assert all(not block.is_message for block in rest)


async def _until_end(stream: Any) -> AsyncIterator[Any]:
    while (block := await stream.block(timeout=10)) is not None:
        yield block


async def test_stop_signal_hook_ends_streams_then_hands_the_signal_on() -> None:
    handed_on: list[int] = []
    stopped = asyncio.Event()

    def previous(signum: int, _frame: FrameType | None) -> None:
        handed_on.append(signum)

    original = signal.signal(signal.SIGUSR1, previous)
    try:
        hook = StopSignalHook(stopped.set, signals=(signal.SIGUSR1,))
        hook.install()
        signal.raise_signal(signal.SIGUSR1)
        await asyncio.wait_for(stopped.wait(), 5)
        hook.uninstall()
        restored = signal.getsignal(signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, original)

    assert handed_on == [signal.SIGUSR1]
    assert restored is previous


@pytest.fixture
async def jwks_url(token_issuer: TokenIssuer) -> AsyncIterator[str]:
    """The test issuer's JWKS over real HTTP, for a service running as its own process."""

    async def serve_jwks(_request: web.Request) -> web.Response:
        return web.json_response(token_issuer.jwks())

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", serve_jwks)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/.well-known/jwks.json"
    await runner.cleanup()


async def test_sigterm_ends_open_streams_so_the_process_exits_well_before_its_grace_period(
    flow: NotificationFlow, infra: TestInfra, jwks_url: str
) -> None:
    """Run as `make up` runs it (uvicorn, uvloop, httptools): a SIGTERM with a stream open
    ends the stream and the process, instead of waiting out the graceful-shutdown timeout."""
    port = free_port()
    kwargs = infra.settings_kwargs("notification-service")
    env = {
        **os.environ,
        "SERVICE_NAME": "notification-service",
        "DATABASE_URL": kwargs["database_url"],
        "DB_SCHEMA": "notifications",
        "REDIS_URL": kwargs["redis_url"],
        "REDIS_KEY_PREFIX": kwargs["redis_key_prefix"],
        "AMQP_URL": kwargs["amqp_url"],
        "JWKS_URL": jwks_url,
        "LOG_LEVEL": "INFO",  # the JSON log on stdout says how it stopped
        "SSE_HEARTBEAT_SECONDS": "0.3",
    }
    grace_seconds = 60
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uvicorn",
        "notification_service.main:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--timeout-graceful-shutdown",
        str(grace_seconds),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        async def live() -> bool:
            try:
                return (await flow.http.get(f"{base}/health/live")).status_code == 200
            except httpx.TransportError:
                return False

        await flow.eventually(live, what="the service process to start")
        async with flow.open_stream(base_url=base) as (response, stream):
            assert response.status_code == 200
            await stream.block()
            loop = asyncio.get_running_loop()
            signalled_at = loop.time()
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(httpx.RemoteProtocolError):
                while await stream.block(timeout=grace_seconds) is not None:
                    pass
        returncode = await asyncio.wait_for(process.wait(), grace_seconds)
        took = loop.time() - signalled_at
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert process.stdout is not None
    log = (await process.stdout.read()).decode()
    # uvicorn ends by re-raising the SIGTERM it handled, once shutdown is complete.
    assert returncode in (0, -signal.SIGTERM)
    assert '"event": "notification_stream_closed"' in log
    assert '"event": "service_stopped"' in log  # the lifespan shutdown ran to its end
    # Without the hook uvicorn would wait the whole grace period for the stream to end.
    assert took < grace_seconds / 2
