"""Delivery beyond the app: e-mail over SMTP to the recipient org's members, and signed
webhooks retried with backoff, through the deliveries table and its background worker.

The SMTP server (aiosmtpd) and the webhook receiver (aiohttp) are real local servers.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import TYPE_CHECKING, Any

from flow_shared.unit_of_work import unit_of_work
from notification_service.delivery.webhook import WebhookSender, webhook_http_client
from notification_service.delivery.worker import DeliveryWorker

if TYPE_CHECKING:
    from conftest import NotificationFlow, SmtpSink, WebhookReceiver


async def prefer(
    flow: NotificationFlow, org_id: uuid.UUID, *, email: bool, webhook_url: str | None = None
) -> dict[str, Any]:
    return await flow.save_preferences(org_id, email=email, webhook_url=webhook_url)


async def placed_order(flow: NotificationFlow, vendor: uuid.UUID, **data: Any) -> uuid.UUID:
    """order.placed for the vendor through RabbitMQ; the stored notification's id."""
    event = flow.events.order(
        "order.placed", vendor_id=vendor, hospital_org_id=uuid.uuid4(), **data
    )
    await flow.publish(event)
    return (await flow.wait_notification(event.id)).id


async def test_email_goes_to_every_member_of_the_recipient_org(
    flow: NotificationFlow, smtp_sink: SmtpSink
) -> None:
    vendor, hospital = uuid.uuid4(), uuid.uuid4()
    await flow.add_member(vendor, "dispatch@vendor.test")
    await flow.add_member(vendor, "owner@vendor.test")
    await flow.add_member(hospital, "ward@hospital.test")

    event = flow.events.order("order.placed", vendor_id=vendor, hospital_org_id=hospital)
    await flow.publish(event)
    stored = await flow.wait_notification(event.id)
    deliveries = await flow.wait_deliveries_done(stored.id)

    assert [(d.channel, d.target, d.status) for d in deliveries] == [
        ("email", "dispatch@vendor.test", "sent"),
        ("email", "owner@vendor.test", "sent"),
    ]
    mails = smtp_sink.for_notification(stored.id)
    assert sorted(rcpt for mail in mails for rcpt in mail.rcpt_tos) == [
        "dispatch@vendor.test",
        "owner@vendor.test",
    ]
    for mail in mails:
        assert mail.message["Subject"] == f"[Flow] {stored.title}"
        assert mail.message["From"] == flow.settings.smtp_from
        assert stored.body in mail.message.get_content()


async def test_no_email_for_an_org_that_turned_it_off(
    flow: NotificationFlow, smtp_sink: SmtpSink
) -> None:
    vendor = uuid.uuid4()
    await flow.add_member(vendor, "quiet@vendor.test")
    await prefer(flow, vendor, email=False)

    notification_id = await placed_order(flow, vendor)

    # Deliveries are queued in the notification's own transaction: none means none.
    assert await flow.deliveries(notification_id) == []
    assert smtp_sink.for_notification(notification_id) == []


async def test_email_refused_for_now_by_the_server_is_sent_again(
    flow: NotificationFlow, smtp_sink: SmtpSink
) -> None:
    vendor = uuid.uuid4()
    await flow.add_member(vendor, "retry@vendor.test")
    smtp_sink.refusals["retry@vendor.test"] = 1

    notification_id = await placed_order(flow, vendor)
    [delivery] = await flow.wait_deliveries_done(notification_id)

    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert [m.rcpt_tos for m in smtp_sink.for_notification(notification_id)] == [
        ["retry@vendor.test"]
    ]


async def test_webhook_arrives_signed(
    flow: NotificationFlow, webhook_receiver: WebhookReceiver
) -> None:
    vendor = uuid.uuid4()
    path = webhook_receiver.new_path()
    saved = await prefer(flow, vendor, email=False, webhook_url=webhook_receiver.url + path)

    notification_id = await placed_order(flow, vendor, payment_method="card", card_token="tok_x")
    [delivery] = await flow.wait_deliveries_done(notification_id)

    assert (delivery.channel, delivery.status, delivery.attempts) == ("webhook", "sent", 1)
    [hook] = webhook_receiver.hooks(path)
    assert len(hook.signatures()[1]) == 1
    assert hook.signed_with(saved["webhook_secret"])
    assert not hook.signed_with("another-secret")
    assert hook.headers["Content-Type"] == "application/json"
    assert hook.headers["X-Flow-Event"] == "order.placed"
    assert hook.headers["X-Flow-Delivery"] == str(delivery.id)
    body = json.loads(hook.body)
    assert body["id"] == str(notification_id)
    assert body["type"] == "order.placed"
    assert body["org_id"] == str(vendor)
    assert "card_token" not in body["data"]


async def test_failing_receiver_is_retried_until_it_answers(
    flow: NotificationFlow, webhook_receiver: WebhookReceiver
) -> None:
    vendor = uuid.uuid4()
    path = webhook_receiver.new_path(answers=[500, 500])  # then 200
    saved = await prefer(flow, vendor, email=False, webhook_url=webhook_receiver.url + path)

    notification_id = await placed_order(flow, vendor)
    [delivery] = await flow.wait_deliveries_done(notification_id)

    assert (delivery.status, delivery.attempts) == ("sent", 3)
    hooks = webhook_receiver.hooks(path)
    assert len(hooks) == 3
    assert len({hook.body for hook in hooks}) == 1  # the same notification each time
    assert all(hook.signed_with(saved["webhook_secret"]) for hook in hooks)


async def test_receiver_that_keeps_failing_is_given_up_after_the_last_attempt(
    flow: NotificationFlow, webhook_receiver: WebhookReceiver
) -> None:
    vendor = uuid.uuid4()
    path = webhook_receiver.new_path(answers=[503] * 20)
    await prefer(flow, vendor, email=False, webhook_url=webhook_receiver.url + path)

    notification_id = await placed_order(flow, vendor)
    [delivery] = await flow.wait_deliveries_done(notification_id)

    max_attempts = flow.settings.delivery_max_attempts
    assert (delivery.status, delivery.attempts) == ("failed", max_attempts)
    assert delivery.last_error is not None
    assert "503" in delivery.last_error
    assert len(webhook_receiver.hooks(path)) == max_attempts


async def test_a_final_refusal_by_the_receiver_is_not_retried(
    flow: NotificationFlow, webhook_receiver: WebhookReceiver
) -> None:
    vendor = uuid.uuid4()
    path = webhook_receiver.new_path(answers=[410])
    await prefer(flow, vendor, email=False, webhook_url=webhook_receiver.url + path)

    notification_id = await placed_order(flow, vendor)
    [delivery] = await flow.wait_deliveries_done(notification_id)

    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert len(webhook_receiver.hooks(path)) == 1


async def test_several_workers_send_each_delivery_exactly_once(
    flow: NotificationFlow, webhook_receiver: WebhookReceiver
) -> None:
    """As with several notification-service processes: SKIP LOCKED claims, no doubles."""
    vendor = uuid.uuid4()
    path = webhook_receiver.new_path()
    saved = await prefer(flow, vendor, email=False, webhook_url=webhook_receiver.url + path)
    events = [
        flow.events.order("order.placed", vendor_id=vendor, hospital_org_id=uuid.uuid4())
        for _ in range(20)
    ]
    handler = flow.app.state.consumer.handlers["order.placed"]
    # All twenty become due at the same commit, for the app's worker and two more at once.
    async with unit_of_work(flow.app.state.database) as uow:
        for event in events:
            await handler(uow.session, event)

    http = webhook_http_client(5)
    try:
        workers = [
            DeliveryWorker(
                flow.app.state.database,
                flow.settings,
                email=None,
                webhook=WebhookSender(http, allow_private=True),
                secret_cipher=flow.app.state.webhook_secret_cipher,
            )
            for _ in range(2)
        ]
        await asyncio.gather(*(worker.run_once() for worker in workers))
        for event in events:
            stored = await flow.wait_notification(event.id)
            await flow.wait_deliveries_done(stored.id)
    finally:
        await http.aclose()

    hooks = webhook_receiver.hooks(path)
    assert len(hooks) == 20
    assert len({hook.headers["X-Flow-Notification"] for hook in hooks}) == 20
    assert all(hook.signed_with(saved["webhook_secret"]) for hook in hooks)


async def test_event_text_cannot_inject_mail_headers(
    flow: NotificationFlow, smtp_sink: SmtpSink
) -> None:
    vendor = uuid.uuid4()
    await flow.add_member(vendor, "stock@vendor.test")
    data = flow.events.low_stock_data(vendor)
    data["sku"] = "O2-CYL\r\nBcc: attacker@evil.test"
    event = flow.events.envelope("inventory.low_stock", data)

    await flow.publish(event)
    stored = await flow.wait_notification(event.id)
    [delivery] = await flow.wait_deliveries_done(stored.id)

    assert delivery.status == "sent"
    [mail] = smtp_sink.for_notification(stored.id)
    assert mail.rcpt_tos == ["stock@vendor.test"]
    assert mail.message["Bcc"] is None
    assert mail.message["Subject"] == "[Flow] Low stock: O2-CYL Bcc: attacker@evil.test"
