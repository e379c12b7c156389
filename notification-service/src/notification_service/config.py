"""notification-service configuration: the shared settings plus SMTP, webhooks, delivery
retries and the live stream."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from flow_shared.config import BaseServiceSettings

MIN_SECRETS_KEY_BYTES = 32


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

    # Each organisation's webhooks are signed with its own secret (X-Flow-Signature), kept
    # in the database encrypted with WEBHOOK_SECRETS_KEY (at least 32 characters): a leaked
    # database or backup does not reveal them. Without it webhooks cannot be configured.
    # Required in production. Changing it makes the stored secrets unreadable (every
    # organisation then rotates its secret).
    webhook_secrets_key: SecretStr | None = None
    # WEBHOOK_SECRET_GRACE_SECONDS: after a rotation the replaced secret keeps signing this
    # long (beside the new one), so receivers can switch over without losing deliveries.
    webhook_secret_grace_seconds: float = Field(default=86_400.0, ge=0, le=30 * 86_400)
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
    # SSE_MAX_STREAMS_PER_USER: open streams one user may hold at once, across every
    # process (counted in Redis); one more is 429. A stream that vanished without closing
    # (a killed process) stops counting after SSE_STREAM_LEASE_SECONDS.
    sse_max_streams_per_user: int = Field(default=5, ge=1, le=100)
    sse_stream_lease_seconds: float = Field(default=30.0, gt=0)
    # SSE_AUTH_RECHECK_SECONDS: how often an open stream re-verifies its token (logout,
    # password change, suspension, removal end it within this time).
    sse_auth_recheck_seconds: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _production_needs_secrets(self) -> Settings:
        if self.database_url is None:
            raise ValueError("notification-service needs DATABASE_URL")
        if self.is_production and self.webhook_secrets_key is None:
            raise ValueError("notification-service needs WEBHOOK_SECRETS_KEY in production")
        key = self.webhook_secrets_key
        if key is not None and len(key.get_secret_value().encode()) < MIN_SECRETS_KEY_BYTES:
            raise ValueError(
                f"WEBHOOK_SECRETS_KEY must be at least {MIN_SECRETS_KEY_BYTES} bytes long"
            )
        if self.sse_auth_recheck_seconds >= self.sse_stream_lease_seconds:
            # Streams renew their lease when they re-check their token.
            raise ValueError("SSE_AUTH_RECHECK_SECONDS must be below SSE_STREAM_LEASE_SECONDS")
        return self

    @property
    def email_enabled(self) -> bool:
        return bool(self.smtp_host)

    @property
    def webhooks_enabled(self) -> bool:
        return self.webhook_secrets_key is not None
