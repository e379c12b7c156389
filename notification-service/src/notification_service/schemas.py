"""Request and response bodies of the public notification API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from flow_shared.validation import NoNul
from notification_service.delivery.guard import MAX_URL_LENGTH, WebhookRefused, parse_webhook_url
from notification_service.models import Notification, Preference


class NotificationOut(BaseModel):
    id: uuid.UUID
    type: str
    title: str
    body: str
    data: dict[str, Any]
    read: bool
    created_at: datetime

    @classmethod
    def of(cls, notification: Notification) -> NotificationOut:
        return cls(
            id=notification.id,
            type=notification.type,
            title=notification.title,
            body=notification.body,
            data=notification.data,
            read=notification.read,
            created_at=notification.created_at,
        )


class ReadAllOut(BaseModel):
    updated: int = Field(description="How many notifications were unread and are now read.")


class PreferencesIn(BaseModel):
    """PUT replaces the organisation's preferences: an omitted webhook_url removes it."""

    model_config = ConfigDict(extra="forbid")

    email: bool
    webhook_url: (
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_LENGTH), NoNul()] | None
    ) = None

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parse_webhook_url(value)
        except WebhookRefused as exc:
            raise ValueError(str(exc)) from None
        return value


class PreferencesOut(BaseModel):
    email: bool
    webhook_url: str | None

    @classmethod
    def of(cls, preference: Preference | None) -> PreferencesOut:
        if preference is None:
            return DEFAULT_PREFERENCES
        return cls(email=preference.email, webhook_url=preference.webhook_url)


# An organisation that never chose: e-mail to its members, no webhook.
DEFAULT_PREFERENCES = PreferencesOut(email=True, webhook_url=None)


class PreferencesSaved(PreferencesOut):
    """The answer to PUT: the preferences, plus the webhook signing secret when this
    request created it (the organisation's first webhook URL)."""

    webhook_secret: str | None = Field(
        default=None,
        description="Present only in the response that created it, and never shown again: "
        "store it to verify X-Flow-Signature.",
    )


class WebhookSecretRotated(BaseModel):
    webhook_secret: str = Field(
        description="The new signing secret, shown only in this response.",
    )
    previous_secret_valid_until: datetime | None = Field(
        description="Until then deliveries are signed with the previous secret too "
        "(null: there was none)."
    )
