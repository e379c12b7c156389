"""The delivery worker: sends due e-mail and webhook deliveries, with retries.

Run by a PeriodicTask in every process. A run claims due rows with FOR UPDATE SKIP
LOCKED (several processes never take the same row), and the claim is a lease: it moves
`next_attempt_at` past the longest a send can take and counts the attempt, then
commits, so no transaction stays open across the network. Each result is written in
its own short transaction. A process that dies mid-send leaves the row to be claimed
again when the lease ends (at-least-once: receivers de-duplicate on the delivery id).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select, update

from flow_shared.clock import utcnow
from flow_shared.db import Database
from flow_shared.json_codec import dumps
from flow_shared.metrics import business_counter
from flow_shared.unit_of_work import unit_of_work
from notification_service.config import Settings
from notification_service.delivery.email import EmailSender, build_message
from notification_service.delivery.guard import WebhookRefused
from notification_service.delivery.webhook import DeliveryFailed, WebhookSender
from notification_service.models import Delivery, DeliveryChannel, DeliveryStatus, Notification
from notification_service.webhook_secrets import WebhookSecretCipher, signing_secrets

log = structlog.get_logger("notifications.delivery")

DELIVERIES = business_counter(
    "flow_notification_deliveries_total",
    "Delivery attempts by channel and outcome (sent, retried, failed, refused).",
    ("channel", "outcome"),
)
MAX_ERROR_LENGTH = 1000


def webhook_body(notification: Notification) -> bytes:
    """What a webhook receives: the notification, as the API shows it (without read state)."""
    return dumps(
        {
            "id": str(notification.id),
            "type": notification.type,
            "org_id": str(notification.org_id),
            "title": notification.title,
            "body": notification.body,
            "data": notification.data,
            "created_at": notification.created_at.isoformat(),
        }
    )


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: uuid.UUID
    channel: str
    target: str
    attempts: int
    notification: Notification
    # The recipient org's webhook signing secrets, read when claimed (webhooks only).
    signing_secrets: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: DeliveryStatus
    error: str | None = None
    retry_at: datetime | None = None


class DeliveryWorker:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        email: EmailSender | None,
        webhook: WebhookSender | None,
        secret_cipher: WebhookSecretCipher | None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.email = email
        self.webhook = webhook
        self.secret_cipher = secret_cipher
        # Past the longest a send may take, so a live claim is never taken twice.
        self.lease = timedelta(
            seconds=2 * max(settings.webhook_timeout_seconds, settings.smtp_timeout_seconds) + 30
        )
        self._semaphore = asyncio.Semaphore(settings.delivery_concurrency)

    def backoff_seconds(self, attempts: int) -> float:
        """Delay before the next attempt after `attempts` failed ones: doubling, capped,
        with jitter so that many deliveries to one dead receiver do not retry in lockstep."""
        settings = self.settings
        delay = settings.delivery_backoff_initial_seconds * 2.0 ** max(attempts - 1, 0)
        return min(delay, settings.delivery_backoff_max_seconds) * random.uniform(0.8, 1.0)

    async def run_once(self) -> int:
        """Send everything due now, a batch at a time. Returns how many were attempted."""
        total = 0
        while True:
            claimed = await self._claim()
            if not claimed:
                return total
            results = await asyncio.gather(
                *(self._deliver(item) for item in claimed), return_exceptions=True
            )
            for item, result in zip(claimed, results, strict=True):
                if isinstance(result, Exception):
                    # Its lease runs out and it is claimed again (the database was away?).
                    log.error("delivery_not_recorded", delivery_id=str(item.id), error=repr(result))
            total += len(claimed)
            if len(claimed) < self.settings.delivery_batch_size:
                return total

    async def _claim(self) -> list[ClaimedDelivery]:
        due = (
            select(Delivery.id)
            .where(
                Delivery.status == DeliveryStatus.PENDING.value,
                Delivery.next_attempt_at <= func.now(),
            )
            .order_by(Delivery.next_attempt_at)
            .limit(self.settings.delivery_batch_size)
            .with_for_update(skip_locked=True)
        )
        async with unit_of_work(self.database) as uow:
            rows = (
                await uow.session.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(due.scalar_subquery()))
                    .values(
                        attempts=Delivery.attempts + 1,
                        next_attempt_at=func.now() + self.lease,
                        updated_at=func.now(),
                    )
                    .returning(
                        Delivery.id,
                        Delivery.channel,
                        Delivery.target,
                        Delivery.attempts,
                        Delivery.notification_id,
                        Delivery.org_id,
                    )
                    .execution_options(synchronize_session=False)
                )
            ).all()
            if not rows:
                return []
            notifications = {
                n.id: n
                for n in await uow.session.scalars(
                    select(Notification).where(
                        Notification.id.in_({row.notification_id for row in rows})
                    )
                )
            }
            secrets_by_org: dict[uuid.UUID, list[str]] = {}
            if self.secret_cipher is not None:
                secrets_by_org = await signing_secrets(
                    uow.session,
                    self.secret_cipher,
                    {row.org_id for row in rows if row.channel == DeliveryChannel.WEBHOOK.value},
                )
        return [
            ClaimedDelivery(
                id=row.id,
                channel=row.channel,
                target=row.target,
                attempts=row.attempts,
                notification=notifications[row.notification_id],
                signing_secrets=tuple(secrets_by_org.get(row.org_id, ())),
            )
            for row in rows
        ]

    async def _deliver(self, item: ClaimedDelivery) -> None:
        async with self._semaphore:
            outcome = await self._attempt(item)
        values: dict[str, Any] = {"status": outcome.status.value, "updated_at": func.now()}
        if outcome.status is DeliveryStatus.SENT:
            values.update(sent_at=func.now(), last_error=None)
        else:
            values["last_error"] = (outcome.error or "")[:MAX_ERROR_LENGTH]
        if outcome.retry_at is not None:
            values["next_attempt_at"] = outcome.retry_at
        async with unit_of_work(self.database) as uow:
            await uow.session.execute(
                update(Delivery)
                .where(Delivery.id == item.id, Delivery.status == DeliveryStatus.PENDING.value)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        log.info(
            "notification_delivery",
            delivery_id=str(item.id),
            notification_id=str(item.notification.id),
            channel=item.channel,
            attempt=item.attempts,
            status=outcome.status.value,
            error=outcome.error,
        )

    async def _attempt(self, item: ClaimedDelivery) -> Outcome:
        try:
            await self._send(item)
        except WebhookRefused as exc:
            DELIVERIES.labels(item.channel, "refused").inc()
            return Outcome(DeliveryStatus.FAILED, f"refused: {exc}")
        except DeliveryFailed as exc:
            return self._failed(item, exc)
        except Exception as exc:
            # A bug or an odd notification must not retry forever: it uses up attempts too.
            log.exception("delivery_attempt_crashed", delivery_id=str(item.id))
            return self._failed(item, DeliveryFailed(repr(exc), permanent=False))
        DELIVERIES.labels(item.channel, "sent").inc()
        return Outcome(DeliveryStatus.SENT)

    def _failed(self, item: ClaimedDelivery, failure: DeliveryFailed) -> Outcome:
        if failure.permanent or item.attempts >= self.settings.delivery_max_attempts:
            DELIVERIES.labels(item.channel, "failed").inc()
            return Outcome(DeliveryStatus.FAILED, str(failure))
        DELIVERIES.labels(item.channel, "retried").inc()
        retry_at = utcnow() + timedelta(seconds=self.backoff_seconds(item.attempts))
        return Outcome(DeliveryStatus.PENDING, str(failure), retry_at)

    async def _send(self, item: ClaimedDelivery) -> None:
        notification = item.notification
        if item.channel == DeliveryChannel.EMAIL.value:
            if self.email is None:
                raise DeliveryFailed("e-mail is not configured (SMTP_HOST)", permanent=True)
            await self.email.send(
                build_message(
                    sender=self.settings.smtp_from,
                    recipient=item.target,
                    title=notification.title,
                    body=notification.body,
                    notification_id=str(notification.id),
                )
            )
        elif item.channel == DeliveryChannel.WEBHOOK.value:
            if self.webhook is None:
                raise DeliveryFailed(
                    "webhooks are not configured (WEBHOOK_SECRETS_KEY)", permanent=True
                )
            await self.webhook.send(
                item.target,
                webhook_body(notification),
                signing_secrets=item.signing_secrets,
                event_type=notification.type,
                delivery_id=str(item.id),
                notification_id=str(notification.id),
            )
        else:
            raise DeliveryFailed(f"unknown channel {item.channel}", permanent=True)
