"""Each organisation signs its webhooks with its own secret: created with its first
webhook URL and shown once, stored encrypted, rotatable, the replaced secret still
signing (beside the new one) for the grace period."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.exceptions import InvalidTag
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from notification_service.config import Settings
from notification_service.models import Preference, WebhookSigningSecret

if TYPE_CHECKING:
    from conftest import NotificationFlow, ReceivedHook, WebhookReceiver

GRACE_SECONDS = 5.0
SETTINGS = {"webhook_secret_grace_seconds": GRACE_SECONDS, "smtp_host": None}
ROTATE = "/api/v1/notifications/preferences/webhook-secret"


async def delivered_hook(
    flow: NotificationFlow, webhook_receiver: WebhookReceiver, org_id: uuid.UUID, path: str
) -> ReceivedHook:
    """An order.placed for the org, delivered to its webhook; what the receiver got."""
    event = flow.events.order("order.placed", vendor_id=org_id, hospital_org_id=uuid.uuid4())
    await flow.handle(event)
    stored = await flow.wait_notification(event.id)
    [delivery] = await flow.wait_deliveries_done(stored.id)
    assert delivery.status == "sent", delivery.last_error
    [hook] = [
        hook
        for hook in webhook_receiver.hooks(path)
        if hook.headers["X-Flow-Notification"] == str(stored.id)
    ]
    return hook


async def rotate(flow: NotificationFlow, org_id: uuid.UUID) -> dict[str, Any]:
    response = await flow.http.post(ROTATE, headers=flow.headers(org_id))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


async def test_each_organisation_signs_with_its_own_secret(
    flow: NotificationFlow, webhook_receiver: WebhookReceiver
) -> None:
    """One customer's secret cannot forge (or verify) another customer's webhooks."""
    first, second = uuid.uuid4(), uuid.uuid4()
    first_path, second_path = webhook_receiver.new_path(), webhook_receiver.new_path()
    first_saved = await flow.save_preferences(
        first, email=False, webhook_url=webhook_receiver.url + first_path
    )
    second_saved = await flow.save_preferences(
        second, email=False, webhook_url=webhook_receiver.url + second_path
    )

    first_hook = await delivered_hook(flow, webhook_receiver, first, first_path)
    second_hook = await delivered_hook(flow, webhook_receiver, second, second_path)

    first_secret, second_secret = first_saved["webhook_secret"], second_saved["webhook_secret"]
    assert first_secret != second_secret
    assert first_hook.signed_with(first_secret)
    assert not first_hook.signed_with(second_secret)
    assert second_hook.signed_with(second_secret)
    assert not second_hook.signed_with(first_secret)


async def test_the_secret_is_shown_once_and_kept_when_the_url_changes(
    flow: NotificationFlow, webhook_receiver: WebhookReceiver
) -> None:
    org = uuid.uuid4()
    put = await flow.http.put(
        "/api/v1/notifications/preferences",
        json={"email": True, "webhook_url": "https://hooks.example.com/first"},
        headers=flow.headers(org),
    )
    secret = put.json()["webhook_secret"]

    got = await flow.http.get("/api/v1/notifications/preferences", headers=flow.headers(org))
    moved = await flow.save_preferences(org, email=True, webhook_url="https://hooks.example.com/2")
    removed = await flow.save_preferences(org, email=True)
    path = webhook_receiver.new_path()
    again = await flow.save_preferences(org, email=False, webhook_url=webhook_receiver.url + path)

    assert put.headers["cache-control"] == "no-store"
    assert secret.startswith("whsec_")
    assert len(secret) >= 40
    assert "webhook_secret" not in got.json()
    assert "webhook_secret" not in moved
    assert "webhook_secret" not in removed
    assert "webhook_secret" not in again
    # The organisation's receiver keeps verifying with the secret it was shown.
    assert (await delivered_hook(flow, webhook_receiver, org, path)).signed_with(secret)


async def test_the_secret_is_stored_encrypted_and_bound_to_its_organisation(
    flow: NotificationFlow,
) -> None:
    org, other = uuid.uuid4(), uuid.uuid4()
    secret = (
        await flow.save_preferences(org, email=True, webhook_url="https://hooks.example.com/a")
    )["webhook_secret"]
    await flow.save_preferences(other, email=True, webhook_url="https://hooks.example.com/b")

    async with flow.sessions() as session:
        [row] = (
            await session.scalars(
                select(WebhookSigningSecret).where(WebhookSigningSecret.org_id == org)
            )
        ).all()
    cipher = flow.app.state.webhook_secret_cipher

    assert secret.encode() not in row.encrypted_secret
    assert secret.split("_", 1)[1].encode() not in row.encrypted_secret
    assert cipher.decrypt(org, row.encrypted_secret) == secret
    with pytest.raises(InvalidTag):
        # Copied onto another organisation's row, it does not decrypt.
        cipher.decrypt(other, row.encrypted_secret)


async def test_rotation_signs_with_both_secrets_during_the_grace_period_then_the_new_only(
    flow: NotificationFlow, webhook_receiver: WebhookReceiver
) -> None:
    org = uuid.uuid4()
    path = webhook_receiver.new_path()
    old = (await flow.save_preferences(org, email=False, webhook_url=webhook_receiver.url + path))[
        "webhook_secret"
    ]

    rotated = await rotate(flow, org)
    during = await delivered_hook(flow, webhook_receiver, org, path)
    valid_until = datetime.fromisoformat(rotated["previous_secret_valid_until"])
    await asyncio.sleep(max(0.0, (valid_until - datetime.now(UTC)).total_seconds()) + 0.5)
    after = await delivered_hook(flow, webhook_receiver, org, path)

    new = rotated["webhook_secret"]
    assert new != old
    assert new.startswith("whsec_")
    expected_until = datetime.now(UTC) + timedelta(seconds=GRACE_SECONDS)
    assert abs((valid_until - expected_until).total_seconds()) < GRACE_SECONDS + 5
    # During the grace period: t=...,v1=<new>,v1=<old>, each verifying on its own.
    _, signatures = during.signatures()
    assert len(signatures) == 2
    assert during.signed_with(new)
    assert during.signed_with(old)
    assert signatures[0] != signatures[1]
    # After it: the new secret only.
    assert len(after.signatures()[1]) == 1
    assert after.signed_with(new)
    assert not after.signed_with(old)


async def test_rotating_again_ends_the_older_secret_at_once(
    flow: NotificationFlow, webhook_receiver: WebhookReceiver
) -> None:
    org = uuid.uuid4()
    path = webhook_receiver.new_path()
    first = (
        await flow.save_preferences(org, email=False, webhook_url=webhook_receiver.url + path)
    )["webhook_secret"]
    second = (await rotate(flow, org))["webhook_secret"]
    third = (await rotate(flow, org))["webhook_secret"]

    hook = await delivered_hook(flow, webhook_receiver, org, path)

    assert len(hook.signatures()[1]) == 2
    assert hook.signed_with(third)
    assert hook.signed_with(second)
    assert not hook.signed_with(first)


async def test_concurrent_rotations_leave_one_current_secret(flow: NotificationFlow) -> None:
    org = uuid.uuid4()
    await flow.save_preferences(org, email=True, webhook_url="https://hooks.example.com/c")

    answers = await asyncio.gather(
        *(flow.http.post(ROTATE, headers=flow.headers(org)) for _ in range(6))
    )

    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    async with flow.sessions() as session:
        current = await session.scalar(
            select(func.count())
            .select_from(WebhookSigningSecret)
            .where(WebhookSigningSecret.org_id == org, WebhookSigningSecret.retires_at.is_(None))
        )
        total = await session.scalar(
            select(func.count())
            .select_from(WebhookSigningSecret)
            .where(WebhookSigningSecret.org_id == org)
        )
    assert (current, total) == (1, 2)


async def test_rotation_without_a_secret_creates_the_first(flow: NotificationFlow) -> None:
    org = uuid.uuid4()

    rotated = await rotate(flow, org)

    assert rotated["webhook_secret"].startswith("whsec_")
    assert rotated["previous_secret_valid_until"] is None


async def test_only_org_admins_rotate_the_secret(flow: NotificationFlow) -> None:
    org = uuid.uuid4()
    await flow.save_preferences(org, email=True, webhook_url="https://hooks.example.com/d")

    response = await flow.http.post(ROTATE, headers=flow.headers(org, role="staff"))
    anonymous = await flow.http.post(ROTATE)

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert "webhook_secret" not in response.text
    assert anonymous.status_code == 401


async def test_a_webhook_without_a_secret_is_never_sent_unsigned(
    flow: NotificationFlow, webhook_receiver: WebhookReceiver
) -> None:
    """A webhook saved before per-organisation secrets existed: its deliveries fail (and
    say what to do) until the organisation rotates or saves its URL again."""
    org = uuid.uuid4()
    path = webhook_receiver.new_path()
    async with flow.sessions() as session, session.begin():
        await session.execute(
            pg_insert(Preference).values(
                org_id=org, email=False, webhook_url=webhook_receiver.url + path
            )
        )

    event = flow.events.order("order.placed", vendor_id=org, hospital_org_id=uuid.uuid4())
    await flow.handle(event)
    stored = await flow.wait_notification(event.id)
    [delivery] = await flow.wait_deliveries_done(stored.id)

    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.last_error is not None
    assert "no webhook signing secret" in delivery.last_error
    assert webhook_receiver.hooks(path) == []
    secret = (await rotate(flow, org))["webhook_secret"]
    assert (await delivered_hook(flow, webhook_receiver, org, path)).signed_with(secret)


def test_a_short_secrets_key_is_refused_and_no_platform_signing_secret_remains(
    make_settings: Any,
) -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_SECRETS_KEY must be at least 32 bytes"):
        make_settings(webhook_secrets_key="too-short")
    assert "webhook_signing_secret" not in Settings.model_fields
