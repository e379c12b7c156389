"""notification-service's domain errors (turned into problem+json by flow_shared.errors)."""

from __future__ import annotations

from flow_shared.errors import NotFound, UnprocessableEntity


class NotificationNotFound(NotFound):
    code = "notification-not-found"
    title = "Notification not found"


class WebhookNotAllowed(UnprocessableEntity):
    code = "webhook-not-allowed"
    title = "Webhook URL not allowed"


class WebhooksUnavailable(UnprocessableEntity):
    code = "webhooks-unavailable"
    title = "Webhooks are not available"
