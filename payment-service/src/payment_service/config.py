"""payment-service configuration: the shared settings plus webhooks, the card provider's
timeout and invoice terms."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from flow_shared.config import BaseServiceSettings

MIN_WEBHOOK_SECRET_LENGTH = 16


class Settings(BaseServiceSettings):
    service_name: str = "payment-service"
    db_schema: str | None = "payments"

    # PAYMENT_WEBHOOK_SECRET: the HMAC-SHA256 key providers sign webhooks with (required).
    payment_webhook_secret: SecretStr | None = None
    # WEBHOOK_TOLERANCE_SECONDS: a signature older (or further in the future) than this is
    # refused, so a captured request cannot be replayed later with a fresh body.
    webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)

    # PROVIDER_TIMEOUT_SECONDS: how long a card provider may take before the call counts as
    # timed out (the event is then retried, with the same idempotency key).
    provider_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # SANDBOX_POOL_SIZE: connections of the built-in sandbox provider, which keeps its books
    # apart from ours (its own pool, its own transactions), as a real provider would.
    sandbox_pool_size: int = Field(default=5, ge=1, le=50)

    # CARD_TOKEN_RETENTION_SECONDS: a card token handed over for an order whose order.placed
    # never came (its placement failed after the hand-over) is deleted after this long, by
    # a job every CARD_TOKEN_PRUNE_INTERVAL_SECONDS. Far longer than an event takes to
    # arrive, even after a broker outage; a token pruned before it makes the payment fail.
    card_token_retention_seconds: int = Field(default=86_400, ge=60, le=30 * 86_400)
    card_token_prune_interval_seconds: float = Field(default=600.0, gt=0, le=86_400)

    # INVOICE_DUE_DAYS: payment terms of invoices issued on delivery (SPEC: net 30).
    invoice_due_days: int = Field(default=30, ge=1, le=365)

    @model_validator(mode="after")
    def _needs_database_and_webhook_secret(self) -> Settings:
        missing = [
            name
            for name, value in {
                "DATABASE_URL": self.database_url,
                "PAYMENT_WEBHOOK_SECRET": self.payment_webhook_secret,
            }.items()
            if value is None
        ]
        if missing:
            raise ValueError(f"payment-service needs {', '.join(missing)}")
        secret = self.payment_webhook_secret
        if secret is not None and len(secret.get_secret_value()) < MIN_WEBHOOK_SECRET_LENGTH:
            raise ValueError(
                f"PAYMENT_WEBHOOK_SECRET must be at least {MIN_WEBHOOK_SECRET_LENGTH} characters"
            )
        return self

    @property
    def webhook_secret(self) -> bytes:
        assert self.payment_webhook_secret is not None  # checked at start-up
        return self.payment_webhook_secret.get_secret_value().encode()
