"""POST /internal/invitations/email (user-service): send one invitation e-mail now.

The one-time token reaches this service only in the authenticated request and
leaves only in the e-mail: it is not stored as a notification or delivery row,
and not logged. Sent synchronously so user-service keeps no invitation whose
e-mail did not go out.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Annotated, Literal

import structlog
from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, StringConstraints

from flow_shared.auth import accepts_callers
from flow_shared.errors import ServiceUnavailable
from notification_service.delivery.email import EmailSender
from notification_service.delivery.webhook import DeliveryFailed
from notification_service.deps import SettingsDep

router = APIRouter(
    prefix="/internal/invitations",
    tags=["internal"],
    dependencies=[accepts_callers("user-service")],
)

log = structlog.get_logger("notification_service.invitations")

ACCEPT_PATH = "/api/v1/auth/invitations/accept"
Text = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class InvitationEmailRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
    full_name: Text
    organization_name: Text
    role: Literal["staff", "org_admin"]
    token: Text
    expires_at: datetime
    has_account: bool


def invitation_message(sender: str, invitation: InvitationEmailRequest) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = invitation.email
    message["Subject"] = f"[Flow] You are invited to join {invitation.organization_name}"
    message["Message-ID"] = make_msgid(domain="flow.local")
    expires = invitation.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    if invitation.has_account:
        # Accepting cannot move an account; the invitee, not the inviter, learns of it.
        body = (
            f"Hello {invitation.full_name},\n\n"
            f"{invitation.organization_name} invited this address to Flow as "
            f"{invitation.role}. This address already has a Flow account, and an account "
            "belongs to one organisation, so the invitation cannot be accepted with it: "
            "ask the admin of your current organisation to remove you first (then accept "
            "below before the invitation expires), or ask to be invited with another "
            "address. If you did not expect this, ignore this e-mail.\n\n"
            f"Invitation token (valid until {expires}, once):\n{invitation.token}\n"
        )
    else:
        body = (
            f"Hello {invitation.full_name},\n\n"
            f"{invitation.organization_name} invited you to Flow as {invitation.role}.\n\n"
            f"To accept, choose a password (at least 12 characters) and send it with this "
            f"token, valid once until {expires}, to POST {ACCEPT_PATH} as "
            '{"token": "...", "password": "..."}:\n\n'
            f"{invitation.token}\n\n"
            "If you did not expect this, ignore this e-mail: nothing happens without it.\n"
        )
    message.set_content(f"{body}\n-- \nFlow\n")
    return message


@router.post("/email", status_code=202)
async def send_invitation_email(body: InvitationEmailRequest, settings: SettingsDep) -> Response:
    if not settings.email_enabled:
        raise ServiceUnavailable("Invitation e-mails need SMTP (SMTP_HOST is not set).")
    try:
        await EmailSender(settings).send(invitation_message(settings.smtp_from, body))
    except DeliveryFailed as exc:
        log.warning("invitation_email_failed", permanent=exc.permanent)
        raise ServiceUnavailable("The invitation e-mail could not be sent.") from None
    return Response(status_code=202)
