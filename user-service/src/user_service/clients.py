"""Typed client of notification-service's internal API: the invitation e-mail.

The one-time token travels only in this authenticated call and in the e-mail it
sends; it is never written to the outbox, a broker message or a log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import httpx
import structlog

from flow_shared.errors import ServiceUnavailable
from flow_shared.http import ServiceClient
from user_service.config import Settings

NOTIFICATION_SERVICE = "notification-service"
INVITATION_EMAIL_PATH = "/internal/invitations/email"

log = structlog.get_logger("user_service.clients")


@dataclass(frozen=True, slots=True)
class InvitationEmail:
    email: str
    full_name: str
    organization_name: str
    role: str
    token: str
    expires_at: datetime
    # The address already has a Flow account (in any organisation): the e-mail says so,
    # as accepting cannot move an account from one organisation to another.
    has_account: bool


class NotificationClient:
    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._http = ServiceClient.from_settings(
            settings, NOTIFICATION_SERVICE, settings.notification_service_url, transport=transport
        )

    async def send_invitation(self, invitation: InvitationEmail) -> None:
        response = await self._http.post(
            INVITATION_EMAIL_PATH,
            json={
                "email": invitation.email,
                "full_name": invitation.full_name,
                "organization_name": invitation.organization_name,
                "role": invitation.role,
                "token": invitation.token,
                "expires_at": invitation.expires_at.isoformat(),
                "has_account": invitation.has_account,
            },
        )
        if response.status_code != 202:
            log.warning("invitation_email_refused", status=response.status_code)
            raise ServiceUnavailable("The invitation e-mail cannot be sent right now; try again.")

    async def aclose(self) -> None:
        await self._http.aclose()
