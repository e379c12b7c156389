"""The one connection manager to RabbitMQ, held by the consumer and by the outbox relay.

`BrokerConnection` opens a connection and its publisher-confirmed channel, runs the
holder's declare step on that channel (the relay checks or declares the topology, the
consumer declares its queues and starts consuming), notices when either is lost, opens
them again with exponential backoff, and closes them. The broker may be away for any
length of time: nothing here waits for it at start-up, callers retry in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection

log = structlog.get_logger("flow.events.connection")

CONNECT_TIMEOUT_SECONDS = 5.0
PUBLISH_TIMEOUT_SECONDS = 10.0

Declared = TypeVar("Declared")


class BrokerUnavailable(RuntimeError):
    """Not connected to RabbitMQ (yet, or any more)."""


class Backoff:
    """Exponential backoff with full jitter for reconnect attempts."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next_delay(self) -> float:
        delay = random.uniform(self.initial / 2, self._next)
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


async def wait_for_event(event: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds`, waking early when `event` is set. True if it was set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
    return event.is_set()


class BrokerConnection:
    """A connection and its publisher-confirmed channel, opened with a declare step.

    `lost` is set when the broker closes either (the consumer watches it; the relay
    checks `is_open` before each pass). `backoff` paces the attempts to open again."""

    def __init__(
        self,
        amqp_url: str,
        *,
        reconnect_initial_delay: float = 0.5,
        reconnect_max_delay: float = 10.0,
    ) -> None:
        self.amqp_url = amqp_url
        self.backoff = Backoff(reconnect_initial_delay, reconnect_max_delay)
        self.lost = asyncio.Event()
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None

    @property
    def channel(self) -> AbstractChannel | None:
        return self._channel

    @property
    def is_open(self) -> bool:
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._connection.connected.is_set()
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def connect(self, declare: Callable[[AbstractChannel], Awaitable[Declared]]) -> Declared:
        """Close what is open, open a fresh connection and channel, and run `declare` on
        the channel; returns what it returns. BrokerUnavailable (everything closed again)
        when any step fails."""
        await self.close()
        self.lost.clear()
        try:
            connection = await aio_pika.connect(self.amqp_url, timeout=CONNECT_TIMEOUT_SECONDS)
        except Exception as exc:
            raise BrokerUnavailable(f"cannot connect to the broker: {exc!r}") from exc
        self._connection = connection
        connection.close_callbacks.add(self._on_closed)
        try:
            # With confirms, a mandatory publish nobody is bound to raises PublishError:
            # an unroutable event, retry or dead letter must raise, never vanish.
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            self._channel = channel
            channel.close_callbacks.add(self._on_closed)
            return await declare(channel)
        except Exception as exc:
            await self.close()
            raise BrokerUnavailable(
                f"cannot open the channel or declare the topology: {exc!r}"
            ) from exc

    async def connect_retrying(
        self,
        declare: Callable[[AbstractChannel], Awaitable[Declared]],
        *,
        stopping: asyncio.Event,
        failure_event: str,
        logger: Any = log,
        **log_fields: Any,
    ) -> Declared | None:
        """`connect` until it succeeds (then the backoff starts over) or `stopping` is set
        (then None), waiting the backoff between attempts; each failure is logged as
        `failure_event` (on the holder's `logger`, with `log_fields`)."""
        while not stopping.is_set():
            try:
                declared = await self.connect(declare)
            except BrokerUnavailable as exc:
                delay = self.backoff.next_delay()
                logger.warning(
                    failure_event,
                    error=repr(exc.__cause__ or exc),
                    retry_in=round(delay, 2),
                    **log_fields,
                )
                await wait_for_event(stopping, delay)
                continue
            self.backoff.reset()
            return declared
        return None

    async def open_channel(self) -> AbstractChannel:
        """Another channel on the open connection, without confirms: for passive declares,
        which close their channel when the queue is missing."""
        if self._connection is None or self._connection.is_closed:
            raise BrokerUnavailable("not connected to the broker")
        return await self._connection.channel(publisher_confirms=False)

    async def close(self) -> None:
        """Close the channel and the connection; never raises (the broker may be gone)."""
        connection, self._connection = self._connection, None
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await channel.close()
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):
                await connection.close()

    def _on_closed(self, _sender: Any, _exc: BaseException | None = None) -> None:
        self.lost.set()
