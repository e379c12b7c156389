"""notification-service configuration: the shared settings plus SMTP, webhooks, delivery
retries and the live stream."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from flow_shared.config import BaseServiceSettings


class Settings(BaseServiceSettings):
    service_name: str = "notification-service"
    db_schema: str | None = "notifications"

    # SMTP_HOST unset: e-mail is off (nothing is queued for it).
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    # SMTP_START_TLS: upgrade with STARTTLS (None: when the server offers it).
    smtp_start_tls: bool | None = None
    smtp_use_tls: bool = False
    smtp_from: str = "Flow <notifications@flow.local>"
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)

    # WEBHOOK_SIGNING_SECRET signs every webhook (X-Flow-Signature); without it webhooks
    # cannot be configured. Required in production.
    webhook_signing_secret: SecretStr | None = None
    webhook_timeout_seconds: float = Field(default=5.0, gt=0)
    # ALLOW_PRIVATE_WEBHOOKS: let webhooks reach loopback/private/link-local addresses
    # (tests and closed networks only: otherwise a webhook is a way into the intranet).
    allow_private_webhooks: bool = False

    # Deliveries (e-mail and webhooks) are retried with exponential backoff, then failed.
    delivery_max_attempts: int = Field(default=8, ge=1, le=50)
    delivery_backoff_initial_seconds: float = Field(default=5.0, gt=0)
    delivery_backoff_max_seconds: float = Field(default=1800.0, gt=0)
    delivery_poll_interval_seconds: float = Field(default=1.0, gt=0)
    delivery_batch_size: int = Field(default=50, ge=1, le=1000)
    delivery_concurrency: int = Field(default=10, ge=1, le=100)

    # SSE_HEARTBEAT_SECONDS: a comment line this often keeps idle streams open through the
    # gateway (and other proxies), which cuts a stream silent for its read timeout: keep it
    # well below api-gateway's read_timeout for notification-service (30 s by default).
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0)
    # SSE_RETRY_MILLISECONDS: the reconnect delay the stream suggests to EventSource clients.
    sse_retry_milliseconds: int = Field(default=3000, ge=0)
    # At most this many missed notifications are replayed for a Last-Event-ID.
    sse_replay_limit: int = Field(default=500, ge=1, le=10_000)
    # A stream whose client reads too slowly is closed (it reconnects with Last-Event-ID).
    sse_queue_size: int = Field(default=256, ge=1)

    @model_validator(mode="after")
    def _production_needs_secrets(self) -> Settings:
        if self.database_url is None:
            raise ValueError("notification-service needs DATABASE_URL")
        if self.is_production and self.webhook_signing_secret is None:
            raise ValueError("notification-service needs WEBHOOK_SIGNING_SECRET in production")
        return self

    @property
    def email_enabled(self) -> bool:
        return bool(self.smtp_host)

    @property
    def webhooks_enabled(self) -> bool:
        return self.webhook_signing_secret is not None
