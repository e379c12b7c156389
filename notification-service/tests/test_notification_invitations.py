"""POST /internal/invitations/email: user-service's invitation e-mail, sent at once over
real SMTP (the aiosmtpd sink), behind the service key, and the one-time token in
it is kept nowhere in notification-service's tables."""

from __future__ import annotations

import secrets
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from flow_shared.testing.infra import caller_key

if TYPE_CHECKING:
    from conftest import NotificationFlow, SmtpSink

URL = "/internal/invitations/email"
TRUSTED_CALLER_KEY = caller_key("user-service")


def _invitation(email: str, *, has_account: bool) -> dict[str, Any]:
    return {
        "email": email,
        "full_name": "Ines Invitee",
        "organization_name": "St. Mary Hospital",
        "role": "staff",
        "token": secrets.token_urlsafe(32),
        "expires_at": "2026-12-10T08:00:00+00:00",
        "has_account": has_account,
    }


def _mails_to(smtp_sink: SmtpSink, email: str) -> list[Any]:
    return [mail for mail in smtp_sink.received if email in mail.rcpt_tos]


async def test_the_invitation_email_carries_the_token_to_the_invitee(
    flow: NotificationFlow, smtp_sink: SmtpSink, notification_db: AsyncEngine
) -> None:
    email = f"invitee-{uuid.uuid4().hex[:8]}@hospital.test"
    body = _invitation(email, has_account=False)

    sent = await flow.http.post(URL, json=body, headers={"X-Service-Key": TRUSTED_CALLER_KEY})

    assert sent.status_code == 202, sent.text
    [mail] = _mails_to(smtp_sink, email)
    assert "St. Mary Hospital" in mail.message["Subject"]
    content = mail.message.get_content()
    assert body["token"] in content
    assert "/api/v1/auth/invitations/accept" in content
    async with notification_db.connect() as conn:
        for table in ("notifications", "deliveries"):
            kept = await conn.scalar(
                text(f"SELECT count(*) FROM {table} t WHERE t::text LIKE :token"),  # noqa: S608
                {"token": f"%{body['token']}%"},
            )
            assert kept == 0, table


async def test_an_address_with_an_account_is_told_so_in_its_own_mailbox(
    flow: NotificationFlow, smtp_sink: SmtpSink
) -> None:
    email = f"member-{uuid.uuid4().hex[:8]}@vendor.test"
    sent = await flow.http.post(
        URL,
        json=_invitation(email, has_account=True),
        headers={"X-Service-Key": TRUSTED_CALLER_KEY},
    )
    assert sent.status_code == 202
    [mail] = _mails_to(smtp_sink, email)
    assert "already has a Flow account" in mail.message.get_content()


async def test_only_trusted_callers_send_invitations(
    flow: NotificationFlow, smtp_sink: SmtpSink
) -> None:
    email = f"spoofed-{uuid.uuid4().hex[:8]}@hospital.test"
    body = _invitation(email, has_account=False)
    for headers in ({}, {"X-Service-Key": "not-a-trusted-key"}):
        refused = await flow.http.post(URL, json=body, headers=headers)
        assert refused.status_code == 401
    assert _mails_to(smtp_sink, email) == []
