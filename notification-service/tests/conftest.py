"""notification-service tests: the app served by a real uvicorn server in this process
(server-sent events need a real HTTP connection: httpx's ASGI transport only returns a
response once it has ended), on the session's real PostgreSQL, Redis and RabbitMQ.

Around it, real local servers the tests read from: an SMTP server (aiosmtpd) and a
webhook receiver (aiohttp). Events reach the service through RabbitMQ (`flow.publish`),
or through its consumer's handlers directly where a test needs to set up many at once.

Each test module gets its own service (module scope), configured by the module's
`SETTINGS` dict over the defaults here, so only one consumer is on the queue at a time.
"""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aio_pika
import httpx
import pytest
import uvicorn
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from flow_shared.events.envelope import EventEnvelope
from flow_shared.testing.infra import TestInfra
from flow_shared.testing.polling import eventually
from flow_shared.testing.service_app import (
    SettingsFactory,
    schema_engine_fixture,
    settings_fixture,
)
from flow_shared.testing.tokens import TokenIssuer
from flow_shared.unit_of_work import unit_of_work
from notification_service.config import Settings
from notification_service.main import create_app
from notification_service.models import Delivery, Member, Notification

# Encrypts the organisations' webhook signing secrets in the test database.
WEBHOOK_SECRETS_KEY = "test-webhook-secrets-key-of-at-least-32-bytes"
T = TypeVar("T")


# --- real local servers ------------------------------------------------------------------


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free local port; yields its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="on",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the server stopped during start-up")
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class ReceivedMail:
    mail_from: str | None
    rcpt_tos: list[str]
    message: email.message.EmailMessage


class SmtpSink:
    """A real SMTP server (aiosmtpd) on a free local port that keeps what it receives."""

    def __init__(self) -> None:
        self.received: list[ReceivedMail] = []
        self.port = 0
        # recipient -> how many more messages to them are refused for now (451)
        self.refusals: dict[str, int] = {}
        self._server: asyncio.Server | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if any(self.refusals.get(rcpt, 0) > 0 for rcpt in envelope.rcpt_tos):
            for rcpt in envelope.rcpt_tos:
                self.refusals[rcpt] = self.refusals.get(rcpt, 0) - 1
            return "451 4.3.0 Try again later"
        content = envelope.content or b""
        raw = content.encode() if isinstance(content, str) else content
        self.received.append(
            ReceivedMail(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                email.message_from_bytes(
                    raw, _class=email.message.EmailMessage, policy=email.policy.default
                ),
            )
        )
        return "250 Message accepted for delivery"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="smtp.test", loop=loop), "127.0.0.1", 0
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def for_notification(self, notification_id: uuid.UUID) -> list[ReceivedMail]:
        return [
            mail
            for mail in self.received
            if mail.message["X-Flow-Notification"] == str(notification_id)
        ]


@dataclass
class ReceivedHook:
    headers: dict[str, str]
    body: bytes

    def signatures(self) -> tuple[int, list[str]]:
        """X-Flow-Signature `t=<unix>,v1=<hex>[,v1=<hex>]`: the time and each v1, in order."""
        pairs = [part.split("=", 1) for part in self.headers["X-Flow-Signature"].split(",")]
        [timestamp] = [int(value) for name, value in pairs if name == "t"]
        return timestamp, [value for name, value in pairs if name == "v1"]

    def signed_with(self, secret: str) -> bool:
        """What a receiver does: recompute HMAC-SHA256(secret, f"{t}.{body}") and accept
        the delivery when any `v1` matches, if the timestamp is fresh."""
        timestamp, signatures = self.signatures()
        expected = hmac.new(
            secret.encode(), f"{timestamp}.".encode() + self.body, hashlib.sha256
        ).hexdigest()
        # Receivers refuse stale timestamps (replays); five minutes is the usual window.
        fresh = abs(time.time() - timestamp) < 300
        return fresh and any(hmac.compare_digest(expected, v1) for v1 in signatures)


@dataclass
class WebhookReceiver:
    """A real HTTP server recording POSTs per path; `script(path, [500, 200])` sets the
    answers of the next requests on a path (then 200)."""

    url: str = ""
    received: dict[str, list[ReceivedHook]] = field(default_factory=dict)
    scripts: dict[str, list[int]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        self.received.setdefault(path, []).append(
            ReceivedHook(dict(request.headers), await request.read())
        )
        script = self.scripts.get(path)
        status = script.pop(0) if script else 200
        return web.Response(status=status, text="ok" if status < 300 else "failing")

    def new_path(self, answers: list[int] | None = None) -> str:
        path = f"/hook/{uuid.uuid4().hex[:12]}"
        if answers:
            self.scripts[path] = list(answers)
        return path

    def hooks(self, path: str) -> list[ReceivedHook]:
        return self.received.get(path, [])


# --- server-sent events ------------------------------------------------------------------


@dataclass
class SseBlock:
    """One block of a text/event-stream (up to a blank line)."""

    id: str | None = None
    event: str | None = None
    data: str | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def is_message(self) -> bool:
        return self.data is not None

    def json(self) -> Any:
        assert self.data is not None
        return json.loads(self.data)


class SseReader:
    """Reads an open event stream block by block."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()
        self.heartbeats = 0

    async def block(self, timeout: float = 20.0) -> SseBlock | None:
        """The next block, or None when the stream has ended."""
        current = SseBlock()
        started = False
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if line == "":
                    if started:
                        self.heartbeats += current.comments.count(" keepalive")
                        return current
                    continue
                started = True
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    current.comments.append(line[1:])
                elif name == "id":
                    current.id = value
                elif name == "event":
                    current.event = value
                elif name == "data":
                    current.data = value if current.data is None else f"{current.data}\n{value}"
                elif name == "retry":
                    current.retry = int(value)
        return None

    async def message(self, timeout: float = 20.0) -> SseBlock:
        """The next block carrying a notification (skipping heartbeats and retry hints)."""
        async with asyncio.timeout(timeout):
            while True:
                block = await self.block(timeout)
                if block is None:
                    raise AssertionError("the stream ended before a message came")
                if block.is_message:
                    return block


# --- events ------------------------------------------------------------------------------


class Events:
    """Envelopes of the events notification-service hears, with data as producers send it."""

    @staticmethod
    def envelope(event_type: str, data: dict[str, Any]) -> EventEnvelope:
        return EventEnvelope(type=event_type, producer="test", data=data)

    @staticmethod
    def order_data(
        *, vendor_id: uuid.UUID, hospital_org_id: uuid.UUID, status: str = "placed", **extra: Any
    ) -> dict[str, Any]:
        """An order.* event's data as order-service publishes it."""
        data: dict[str, Any] = {
            "order_id": str(uuid.uuid4()),
            "hospital_org_id": str(hospital_org_id),
            "vendor_id": str(vendor_id),
            "depot_id": str(uuid.uuid4()),
            "status": status,
            "priority": "urgent",
            "payment_method": "invoice",
            "total": "450.00",
            "currency": "INR",
            "items": [
                {
                    "product_id": str(uuid.uuid4()),
                    "quantity": 6,
                    "unit_price": "75.00",
                    "line_total": "450.00",
                }
            ],
            "actor_id": str(uuid.uuid4()),
            "at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        data.update(extra)
        return data

    def order(
        self, event_type: str, *, vendor_id: uuid.UUID, hospital_org_id: uuid.UUID, **extra: Any
    ) -> EventEnvelope:
        status = event_type.split(".", 1)[1]
        return self.envelope(
            event_type,
            self.order_data(
                vendor_id=vendor_id, hospital_org_id=hospital_org_id, status=status, **extra
            ),
        )

    @staticmethod
    def low_stock_data(vendor_id: uuid.UUID) -> dict[str, Any]:
        return {
            "depot_id": str(uuid.uuid4()),
            "vendor_id": str(vendor_id),
            "product_id": str(uuid.uuid4()),
            "sku": "O2-CYL-D",
            "available": 3,
            "low_stock_threshold": 5,
        }

    @staticmethod
    def organization_verified_data(org_id: uuid.UUID, name: str = "Oxy Depot") -> dict[str, Any]:
        return {
            "org_id": str(org_id),
            "name": name,
            "kind": "vendor",
            "actor_id": str(uuid.uuid4()),
            "verified_at": datetime.now(UTC).isoformat(),
        }

    @staticmethod
    def license_expiring_data(
        org_id: uuid.UUID, *, days_left: int, name: str = "St. Mary"
    ) -> dict[str, Any]:
        expires = datetime.now(UTC).date() + timedelta(days=days_left)
        return {
            "org_id": str(org_id),
            "name": name,
            "kind": "hospital",
            "license_expires_on": expires.isoformat(),
            "days_left": days_left,
        }

    @staticmethod
    def payment_failed_data(*, hospital_org_id: uuid.UUID, vendor_id: uuid.UUID) -> dict[str, Any]:
        return {
            "payment_id": str(uuid.uuid4()),
            "order_id": str(uuid.uuid4()),
            "hospital_org_id": str(hospital_org_id),
            "vendor_id": str(vendor_id),
            "method": "card",
            "status": "failed",
            "amount": "450.00",
            "currency": "INR",
            "reason": "card declined",
        }

    @staticmethod
    def user_registered_data(org_id: uuid.UUID, email_address: str) -> dict[str, Any]:
        return {
            "user_id": str(uuid.uuid4()),
            "email": email_address,
            "full_name": "Test Member",
            "role": "staff",
            "org_id": str(org_id),
            "org_kind": "vendor",
            "org_name": "Oxy Depot",
            "org_verified": True,
            "added_by": None,
        }


# --- the service under test --------------------------------------------------------------


class NotificationFlow:
    """The running service and ways to feed it and look into it."""

    events = Events()
    eventually = staticmethod(eventually)
    serve = staticmethod(serve)

    def __init__(
        self,
        app: FastAPI,
        url: str,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        tokens: TokenIssuer,
        amqp: aio_pika.abc.AbstractRobustConnection,
        exchange_name: str,
    ) -> None:
        self.app = app
        self.url = url
        self.http = http
        self.engine = engine
        self.tokens = tokens
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._amqp = amqp
        self._exchange_name = exchange_name

    @property
    def settings(self) -> Settings:
        settings: Settings = self.app.state.settings
        return settings

    def headers(
        self, org_id: uuid.UUID, *, org_kind: str = "vendor", role: str = "org_admin"
    ) -> dict[str, str]:
        return self.tokens.headers(org_kind=org_kind, role=role, org_id=org_id)

    @asynccontextmanager
    async def open_stream(
        self,
        org_id: uuid.UUID | None = None,
        *,
        headers: dict[str, str] | None = None,
        last_event_id: str | None = None,
        base_url: str | None = None,
        read_timeout: float | None = None,
    ) -> AsyncIterator[tuple[httpx.Response, SseReader]]:
        """GET .../stream (here, or from the server at `base_url`), kept open while in use.

        `read_timeout`: the longest wait for the next bytes before the client gives up
        (httpx.ReadTimeout), as a proxy in front does (api-gateway's read_timeout)."""
        request_headers = dict(headers or self.headers(org_id or uuid.uuid4()))
        if last_event_id is not None:
            request_headers["Last-Event-ID"] = last_event_id
        url = f"{base_url or self.url}/api/v1/notifications/stream"
        timeout = (
            self.http.timeout if read_timeout is None else httpx.Timeout(10, read=read_timeout)
        )
        async with self.http.stream(
            "GET", url, headers=request_headers, timeout=timeout
        ) as response:
            yield response, SseReader(response)

    async def save_preferences(
        self, org_id: uuid.UUID, *, email: bool, webhook_url: str | None = None
    ) -> dict[str, Any]:
        """PUT the org's preferences as its admin; the answer (with `webhook_secret` when
        this created it)."""
        response = await self.http.put(
            "/api/v1/notifications/preferences",
            json={"email": email, "webhook_url": webhook_url},
            headers=self.headers(org_id),
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def publish(self, event: EventEnvelope) -> None:
        """Through RabbitMQ, as a producer's outbox relay does."""
        channel = await self._amqp.channel()
        try:
            exchange = await channel.declare_exchange(
                self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
            await exchange.publish(
                aio_pika.Message(
                    event.model_dump_json().encode(),
                    content_type="application/json",
                    message_id=str(event.id),
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=event.routing_key,
            )
        finally:
            await channel.close()

    async def handle(self, event: EventEnvelope) -> None:
        """Straight into the consumer's handler, in a unit of work of its own as the
        consumer runs it (no inbox)."""
        handler = self.app.state.consumer.handlers[event.type]
        async with unit_of_work(self.app.state.database) as uow:
            await handler(uow.session, event)

    async def notifications_for_event(self, event_id: uuid.UUID) -> list[Notification]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Notification).where(Notification.event_id == event_id)
            )
            return list(rows.all())

    async def wait_notification(self, event_id: uuid.UUID) -> Notification:
        async def stored() -> Notification | None:
            rows = await self.notifications_for_event(event_id)
            return rows[0] if rows else None

        return await eventually(stored, what=f"the notification of event {event_id}")

    async def count_for_org(self, org_id: uuid.UUID) -> int:
        async with self.sessions() as session:
            count = await session.scalar(
                select(func.count()).select_from(Notification).where(Notification.org_id == org_id)
            )
            return int(count or 0)

    async def deliveries(self, notification_id: uuid.UUID) -> list[Delivery]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Delivery)
                .where(Delivery.notification_id == notification_id)
                .order_by(Delivery.target)
            )
            return list(rows.all())

    async def wait_deliveries_done(self, notification_id: uuid.UUID) -> list[Delivery]:
        async def done() -> list[Delivery] | None:
            rows = await self.deliveries(notification_id)
            return rows if rows and all(d.status != "pending" for d in rows) else None

        return await eventually(done, what=f"the deliveries of {notification_id}")

    async def member(self, user_id: uuid.UUID) -> Member | None:
        async with self.sessions() as session:
            return await session.get(Member, user_id)

    async def add_member(self, org_id: uuid.UUID, email_address: str) -> None:
        await self.handle(
            self.events.envelope(
                "user.registered", self.events.user_registered_data(org_id, email_address)
            )
        )


make_settings = settings_fixture(
    "notification-service",
    Settings,
    log_level="WARNING",
    webhook_secrets_key=WEBHOOK_SECRETS_KEY,
    # The test receivers listen on 127.0.0.1; the guard module turns this off.
    allow_private_webhooks=True,
    delivery_poll_interval_seconds=0.1,
    delivery_backoff_initial_seconds=0.05,
    delivery_backoff_max_seconds=0.2,
    delivery_max_attempts=4,
)


@pytest.fixture(scope="module")
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    await sink.start()
    yield sink
    await sink.stop()


@pytest.fixture(scope="module")
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


notification_db = schema_engine_fixture("notifications", scope="module")


@pytest.fixture(scope="module")
async def flow(
    request: pytest.FixtureRequest,
    infra: TestInfra,
    make_settings: SettingsFactory[Settings],
    token_issuer: TokenIssuer,
    smtp_sink: SmtpSink,
    notification_db: AsyncEngine,
) -> AsyncIterator[NotificationFlow]:
    overrides: dict[str, Any] = {"smtp_host": "127.0.0.1", "smtp_port": smtp_sink.port}
    overrides.update(getattr(request.module, "SETTINGS", {}))
    settings = make_settings(**overrides)
    app = create_app(settings, jwks_fetcher=token_issuer.fetch_jwks)
    async with serve(app) as url:

        async def consuming() -> bool:
            return bool(app.state.consumer.is_connected)

        # Events published before the queue is bound would be dropped by the exchange.
        await eventually(consuming, what="the consumer to bind its queue")
        await app.state.notification_hub.wait_subscribed(10)
        amqp = await aio_pika.connect_robust(infra.amqp_url)
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            yield NotificationFlow(
                app, url, http, notification_db, token_issuer, amqp, settings.events_exchange
            )
        await amqp.close()
