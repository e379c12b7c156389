"""GET /api/v1/notifications/stream: the caller's notifications as server-sent events: its
organisation's, less those for another role or user in it (audience.py), as in the list.

Each message is `id: <notification id>`, `event: <type>`, `data: <JSON as in the list>`.
A client that reconnects sends `Last-Event-ID` and first gets what it missed, from the
database. A comment line every SSE_HEARTBEAT_SECONDS keeps an idle stream open through
proxies that cut silent connections (the gateway's read timeout is 30 s by default).
The stream ends when the token expires (the client reconnects with a fresh one), within
SSE_AUTH_RECHECK_SECONDS of the token's revocation (logout, password change, suspension,
removal: it is verified again, as a new request would be), and when the process shuts
down (the client reconnects to another one). Each user may hold at most
SSE_MAX_STREAMS_PER_USER streams at once (stream_leases.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Sequence

import anyio
import structlog

from flow_shared.auth import Principal, TokenVerifier
from flow_shared.clock import utcnow
from flow_shared.db import Database
from flow_shared.errors import DomainError
from flow_shared.json_codec import dumps
from flow_shared.metrics import business_gauge
from flow_shared.unit_of_work import unit_of_work
from notification_service import service
from notification_service.audience import Reader
from notification_service.config import Settings
from notification_service.hub import LiveNotification, NotificationHub, Signal
from notification_service.models import Notification
from notification_service.schemas import NotificationOut
from notification_service.stream_leases import StreamLease

log = structlog.get_logger("notifications.stream")

OPEN_STREAMS = business_gauge(
    "flow_notification_streams_open", "Server-sent event streams open in this process."
)
HEARTBEAT = b": keepalive\n\n"
# Ids already sent, to skip a notification that arrives both from the database and live.
RECENT_IDS = 2048
RELEASE_TIMEOUT_SECONDS = 2.0


def sse_message(notification_id: str, event_type: str, payload: object) -> bytes:
    # orjson never emits a raw newline, so the data fits on one `data:` line.
    return f"id: {notification_id}\nevent: {event_type}\ndata: ".encode() + dumps(payload) + b"\n\n"


def live_notification(notification: Notification) -> LiveNotification:
    return LiveNotification(
        seq=notification.seq,
        payload=NotificationOut.of(notification).model_dump(mode="json"),
        audience_role=notification.audience_role,
        user_id=notification.user_id,
    )


def parse_last_event_id(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return None


class _Sent:
    """The ids of recently sent notifications and the highest seq sent."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self._order: deque[str] = deque()
        self._ids: set[str] = set()

    def __contains__(self, notification_id: str) -> bool:
        return notification_id in self._ids

    def add(self, notification_id: str, seq: int) -> None:
        self.seq = max(self.seq, seq)
        self._ids.add(notification_id)
        self._order.append(notification_id)
        if len(self._order) > RECENT_IDS:
            self._ids.discard(self._order.popleft())


async def notification_stream(
    *,
    database: Database,
    hub: NotificationHub,
    settings: Settings,
    principal: Principal,
    token: str,
    verifier: TokenVerifier,
    lease: StreamLease,
    last_event_id: uuid.UUID | None,
) -> AsyncIterator[bytes]:
    """The stream's messages. It holds `lease` (its place in the user's stream count)
    and gives it back when it ends, however it ends."""
    messages = _stream_messages(
        database=database,
        hub=hub,
        settings=settings,
        principal=principal,
        token=token,
        verifier=verifier,
        lease=lease,
        last_event_id=last_event_id,
    )
    try:
        # aclosing: closing this stream closes the inner one now, not when collected.
        async with contextlib.aclosing(messages):
            async for message in messages:
                yield message
    finally:
        # A client that went away cancels the stream: shielded, or the release is cancelled too.
        with anyio.move_on_after(RELEASE_TIMEOUT_SECONDS, shield=True):
            await lease.release()


async def still_authorized(verifier: TokenVerifier, token: str) -> str | None:
    """None while the token still verifies (revocation included: logout, password change,
    suspension, removal), else why not."""
    try:
        await verifier.verify(token)
    except DomainError as exc:
        return exc.detail
    return None


async def _stream_messages(
    *,
    database: Database,
    hub: NotificationHub,
    settings: Settings,
    principal: Principal,
    token: str,
    verifier: TokenVerifier,
    lease: StreamLease,
    last_event_id: uuid.UUID | None,
) -> AsyncGenerator[bytes, None]:
    # What the list would show this user: the org's, less what is for another role or user.
    reader = Reader.of(principal)
    # Subscribed before reading the database: nothing falls between replay and live.
    with hub.subscribe(reader) as subscription:
        OPEN_STREAMS.inc()
        try:
            yield f"retry: {settings.sse_retry_milliseconds}\n\n".encode()
            async with unit_of_work(database) as uow:
                after = None
                if last_event_id is not None:
                    after = await service.seq_of(uow.session, reader, last_event_id)
                if after is None:
                    # A first connection (or an id we do not know): only what comes next.
                    sent = _Sent(await service.latest_seq(uow.session, reader))
                    missed: Sequence[Notification] = ()
                else:
                    sent = _Sent(after)
                    missed = await service.notifications_after(
                        uow.session, reader, after, limit=settings.sse_replay_limit
                    )
            for notification in missed:
                yield _sent_message(sent, live_notification(notification))

            clock = asyncio.get_running_loop().time
            next_check = clock() + settings.sse_auth_recheck_seconds
            next_heartbeat = clock() + settings.sse_heartbeat_seconds
            while True:
                remaining = (principal.expires_at - utcnow()).total_seconds()
                if remaining <= 0:
                    return  # the token expired: the client reconnects with a fresh one
                if clock() >= next_check:
                    refused = await still_authorized(verifier, token)
                    if refused is not None:
                        # Revoked since the stream opened: it must not outlive the session.
                        log.info("notification_stream_closed", reason="token", detail=refused)
                        return
                    await lease.renew()
                    next_check = clock() + settings.sse_auth_recheck_seconds
                if clock() >= next_heartbeat:
                    yield HEARTBEAT
                    next_heartbeat = clock() + settings.sse_heartbeat_seconds
                wait = max(0.0, min(next_check - clock(), next_heartbeat - clock(), remaining))
                try:
                    item = await asyncio.wait_for(subscription.get(), wait)
                except TimeoutError:
                    continue
                if item is Signal.CLOSED:
                    log.info("notification_stream_closed", reason=subscription.close_reason)
                    return
                if item is Signal.RESYNC:
                    async for message in _catch_up(database, settings, reader, sent):
                        yield message
                    next_heartbeat = clock() + settings.sse_heartbeat_seconds
                    continue
                assert isinstance(item, LiveNotification)
                if item.id not in sent:
                    yield _sent_message(sent, item)
                    # Any message keeps proxies from cutting the stream, as a heartbeat does.
                    next_heartbeat = clock() + settings.sse_heartbeat_seconds
        finally:
            OPEN_STREAMS.dec()


def _sent_message(sent: _Sent, live: LiveNotification) -> bytes:
    sent.add(live.id, live.seq)
    return sse_message(live.id, str(live.payload["type"]), live.payload)


async def _catch_up(
    database: Database, settings: Settings, reader: Reader, sent: _Sent
) -> AsyncIterator[bytes]:
    """After the live feed had a gap: what was stored since the last one sent."""
    async with unit_of_work(database) as uow:
        missed = await service.notifications_after(
            uow.session, reader, sent.seq, limit=settings.sse_replay_limit
        )
    for notification in missed:
        if str(notification.id) not in sent:
            yield _sent_message(sent, live_notification(notification))
