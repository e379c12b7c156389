"""Live fan-out of new notifications to open streams, across processes, through Redis.

Whichever process's consumer stores a notification publishes it, after its transaction
commits, on the organisation's channel (`<prefix>notifications:org:<org_id>`; one for
only some of its members, a role or a user, on `<prefix>notifications:org:<org_id>:narrow`).
Every process holds one pattern subscription to all of them and hands each message to
the streams of that organisation it serves whose reader it is for (audience.py), as the
list would. Redis pub/sub is fire-and-forget: when the subscription was lost and comes
back, streams are told to catch up from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from flow_shared.events.connection import Backoff, wait_for_event
from flow_shared.json_codec import dumps, loads
from notification_service.audience import Reader

log = structlog.get_logger("notifications.hub")

_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")
NARROW_SUFFIX = ":narrow"


class Signal(Enum):
    """What a stream is told besides new notifications."""

    CLOSED = "closed"  # the stream must end (shutdown, or its client is too slow)
    RESYNC = "resync"  # messages may have been missed: read the database


@dataclass(frozen=True, slots=True)
class LiveNotification:
    seq: int
    payload: dict[str, Any]  # as the API shows it: id, type, title, body, data, read, created_at
    # Who in the org it is for (both None: everyone).
    audience_role: str | None = None
    user_id: uuid.UUID | None = None

    @property
    def narrow(self) -> bool:
        return self.audience_role is not None or self.user_id is not None

    @property
    def id(self) -> str:
        return str(self.payload["id"])


HubItem = LiveNotification | Signal


class Subscription:
    """One open stream's inbox of live notifications."""

    def __init__(self, reader: Reader, size: int) -> None:
        self.reader = reader
        self.org_id = reader.org_id
        self.queue: asyncio.Queue[HubItem] = asyncio.Queue(maxsize=size)
        self.closed = False
        self.close_reason: str | None = None

    def offer(self, item: HubItem) -> None:
        if self.closed:
            return
        if isinstance(item, LiveNotification) and not self.reader.reads(
            self.org_id, item.audience_role, item.user_id
        ):
            return  # for another role or user of the org: the list would not show it either
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            # A client this far behind reconnects and replays from its Last-Event-ID.
            self.close("too slow")

    def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(Signal.CLOSED)

    async def get(self) -> HubItem:
        return await self.queue.get()


class NotificationHub:
    def __init__(self, redis: Redis, prefix: str, *, queue_size: int) -> None:
        self.redis = redis
        self.channel_prefix = f"{prefix}notifications:org:"
        self.queue_size = queue_size
        self._subscriptions: dict[uuid.UUID, set[Subscription]] = defaultdict(set)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._closing = False
        self._backoff = Backoff(0.2, 5.0)

    def channel(self, org_id: uuid.UUID, *, narrow: bool = False) -> str:
        # A process too old to know audiences cannot parse a narrow channel's org id and
        # drops its messages, rather than showing them to the whole org.
        return f"{self.channel_prefix}{org_id}{NARROW_SUFFIX if narrow else ''}"

    # -- publishing ----------------------------------------------------------------------

    async def publish(self, org_id: uuid.UUID, live: LiveNotification) -> None:
        """Best effort: the notification is stored already, a stream that misses it live
        gets it on its next reconnect (Last-Event-ID) or resync."""
        message = dumps(
            {
                "seq": live.seq,
                "notification": live.payload,
                "audience_role": live.audience_role,
                "user_id": str(live.user_id) if live.user_id is not None else None,
            }
        ).decode()
        try:
            await self.redis.publish(self.channel(org_id, narrow=live.narrow), message)
        except RedisError as exc:
            log.warning("notification_publish_failed", org_id=str(org_id), error=repr(exc))

    # -- subscribing ---------------------------------------------------------------------

    @contextlib.contextmanager
    def subscribe(self, reader: Reader) -> Iterator[Subscription]:
        org_id = reader.org_id
        subscription = Subscription(reader, self.queue_size)
        if self._closing:
            subscription.close("shutting down")
        self._subscriptions[org_id].add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._subscriptions.get(org_id)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscriptions[org_id]

    def close_all(self, reason: str) -> None:
        """End every stream (and refuse new ones): the process is going away."""
        self._closing = True
        for subscribers in list(self._subscriptions.values()):
            for subscription in list(subscribers):
                subscription.close(reason)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="notification-hub")

    async def stop(self) -> None:
        self._stopping.set()
        self.close_all("shutting down")
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def check_subscribed(self) -> None:
        if not self._subscribed.is_set():
            raise ConnectionError("the live notification subscription is not connected")

    async def wait_subscribed(self, seconds: float) -> None:
        await asyncio.wait_for(self._subscribed.wait(), seconds)

    async def _run(self) -> None:
        pattern = _GLOB_SPECIAL.sub(r"\\\1", self.channel_prefix) + "*"
        had_subscription = False
        while not self._stopping.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(pattern)
                self._subscribed.set()
                self._backoff.reset()
                if had_subscription:
                    # Whatever was published while we were away went to nobody here.
                    self._broadcast(Signal.RESYNC)
                had_subscription = True
                while not self._stopping.is_set():
                    # A bounded wait, so a dead connection is noticed (health checks).
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                    if message is not None and message.get("type") == "pmessage":
                        self._dispatch(message)
            except (RedisError, OSError) as exc:
                log.warning("notification_hub_disconnected", error=repr(exc))
            finally:
                self._subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py stub gap
            await wait_for_event(self._stopping, self._backoff.next_delay())

    def _broadcast(self, item: HubItem) -> None:
        for subscribers in list(self._subscriptions.values()):
            for subscription in list(subscribers):
                subscription.offer(item)

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message.get("channel")
        if isinstance(channel, bytes):
            channel = channel.decode()
        if not isinstance(channel, str) or not channel.startswith(self.channel_prefix):
            return
        try:
            tail = channel[len(self.channel_prefix) :]
            org_id = uuid.UUID(tail.removesuffix(NARROW_SUFFIX))
            body = loads(message["data"])
            role = body.get("audience_role")
            user_id = body.get("user_id")
            live = LiveNotification(
                seq=int(body["seq"]),
                payload=dict(body["notification"]),
                audience_role=str(role) if role is not None else None,
                user_id=uuid.UUID(str(user_id)) if user_id is not None else None,
            )
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("notification_hub_bad_message", channel=channel, error=repr(exc))
            return
        for subscription in list(self._subscriptions.get(org_id, ())):
            subscription.offer(live)
