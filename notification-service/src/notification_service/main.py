"""notification-service app factory (`uvicorn notification_service.main:create_app --factory`)."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.app import EventsConfig, create_service_app
from flow_shared.auth import JWKSFetcher
from flow_shared.lifecycle import PeriodicTask
from flow_shared.unit_of_work import current_unit_of_work
from notification_service import api, invitations
from notification_service.config import Settings
from notification_service.delivery.email import EmailSender
from notification_service.delivery.webhook import WebhookSender, webhook_http_client
from notification_service.delivery.worker import DeliveryWorker
from notification_service.events import event_handlers
from notification_service.hub import NotificationHub
from notification_service.models import Notification, inbox
from notification_service.shutdown import StopSignalHook
from notification_service.stream import live_notification
from notification_service.stream_leases import StreamLeases
from notification_service.webhook_secrets import WebhookSecretCipher


class LiveStreamPublisher:
    """Hands each new notification to the live streams once its unit of work commits (and
    so it is replayable)."""

    def __init__(self) -> None:
        # Set at start-up (_start_live_streams); until then no stream can be open.
        self.hub: NotificationHub | None = None

    def publish_after_commit(self, session: AsyncSession, notification: Notification) -> None:
        """Streams hear of a notification only once it is committed (and so replayable)."""
        hub = self.hub
        if hub is None:
            return  # still starting up: no stream can be open yet
        current_unit_of_work(session).after_commit(
            partial(hub.publish, notification.org_id, live_notification(notification))
        )


def create_app(
    settings: Settings | None = None, *, jwks_fetcher: JWKSFetcher | None = None
) -> FastAPI:
    settings = settings or Settings()
    live_streams = LiveStreamPublisher()

    async def start_notifications(app: FastAPI) -> None:
        await _start_live_streams(app, settings, live_streams)
        await _start_deliveries(app, settings)

    async def stop_notifications(app: FastAPI) -> None:
        await _stop_deliveries(app)
        await _stop_live_streams(app)

    return create_service_app(
        settings,
        title="Flow notification-service",
        routers=[api.router],
        internal_routers=[invitations.router],
        events=EventsConfig(
            inbox=inbox, handlers=event_handlers(settings, live_streams.publish_after_commit)
        ),
        jwks_fetcher=jwks_fetcher,
        on_startup=[start_notifications],
        on_shutdown=[stop_notifications],
        periodic=[_delivery_task],
    )


async def _start_live_streams(
    app: FastAPI, settings: Settings, live_streams: LiveStreamPublisher
) -> None:
    """The hub that fans notifications out to this process's streams, the per-user stream
    leases, and the stop-signal hook that ends open streams when the server stops."""
    hub = NotificationHub(
        app.state.redis, settings.redis_key_prefix, queue_size=settings.sse_queue_size
    )
    app.state.notification_hub = hub
    live_streams.hub = hub
    app.state.stream_leases = StreamLeases(
        app.state.redis,
        settings.redis_key_prefix,
        per_user=settings.sse_max_streams_per_user,
        lease_seconds=settings.sse_stream_lease_seconds,
    )
    await hub.start()
    # Only live streams depend on it; lists, reads and deliveries work without it.
    app.state.health.add("notification_hub", hub.check_subscribed, critical=False)
    stop_hook = StopSignalHook(lambda: hub.close_all("server stopping"))
    stop_hook.install()
    app.state.stop_signal_hook = stop_hook


async def _start_deliveries(app: FastAPI, settings: Settings) -> None:
    """E-mail and webhook deliveries: the worker (`_delivery_task` runs it)."""
    http = webhook_http_client(settings.webhook_timeout_seconds)
    app.state.webhook_http = http
    key = settings.webhook_secrets_key
    cipher = WebhookSecretCipher(key.get_secret_value()) if key is not None else None
    app.state.webhook_secret_cipher = cipher
    worker = DeliveryWorker(
        app.state.database,
        settings,
        email=EmailSender(settings) if settings.email_enabled else None,
        webhook=(
            WebhookSender(http, allow_private=settings.allow_private_webhooks)
            if cipher is not None
            else None
        ),
        secret_cipher=cipher,
    )
    app.state.delivery_worker = worker


def _delivery_task(app: FastAPI) -> PeriodicTask:
    worker: DeliveryWorker = app.state.delivery_worker
    return PeriodicTask(
        "notification-deliveries",
        worker.settings.delivery_poll_interval_seconds,
        worker.run_once,
        # A run in progress may take up to its lease to finish before it is cancelled.
        stop_timeout_seconds=worker.lease.total_seconds(),
    )


async def _stop_deliveries(app: FastAPI) -> None:
    await app.state.webhook_http.aclose()


async def _stop_live_streams(app: FastAPI) -> None:
    app.state.stop_signal_hook.uninstall()
    await app.state.notification_hub.stop()
