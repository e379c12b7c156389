"""notification-service's domain errors (turned into problem+json by flow_shared.errors)."""

from __future__ import annotations

from flow_shared.errors import (
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    UnprocessableEntity,
)


class NotificationNotFound(NotFound):
    code = "notification-not-found"
    title = "Notification not found"


class WebhookNotAllowed(UnprocessableEntity):
    code = "webhook-not-allowed"
    title = "Webhook URL not allowed"


class WebhooksUnavailable(UnprocessableEntity):
    code = "webhooks-unavailable"
    title = "Webhooks are not available"


class TooManyStreams(TooManyRequests):
    code = "too-many-streams"
    title = "Too many live streams"


class StreamLimitUnavailable(ServiceUnavailable):
    code = "stream-limit-unavailable"
    title = "Live streams are unavailable"
