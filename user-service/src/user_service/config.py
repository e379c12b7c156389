"""user-service settings: the shared ones plus signing keys, token lifetimes,
lockout policy, Argon2 cost and the bootstrap admin."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from flow_shared.config import UpstreamAttempts, UpstreamCallerSettings, UpstreamSeconds
from flow_shared.fleet_table import FLEET
from user_service.schemas import EMAIL_PATTERN, MIN_PASSWORD_LENGTH


class Settings(UpstreamCallerSettings):
    service_name: str = "user-service"
    db_schema: str | None = "users"

    # PEM (PKCS8) RSA private keys named `<kid>.pem`. Every key in the folder is
    # published in the JWKS; the active one signs. Checked when the app is built.
    jwt_keys_dir: Path = Path("var/keys")
    # Default: the lexicographically last kid; keys are named with a date prefix
    # (`k20261124-ab12cd34`), so the newest key signs.
    jwt_active_kid: str | None = None
    # JWT_PRIVATE_KEYS: the keys themselves, for containers without a key folder:
    # comma-separated `<kid>:<base64 of the PEM>`. When set, JWT_KEYS_DIR is not read.
    jwt_private_keys: SecretStr | None = None

    access_token_ttl_seconds: int = Field(default=900, ge=60, le=3600)
    refresh_token_ttl_seconds: int = Field(default=14 * 24 * 3600, ge=300)

    # Failures per (e-mail, client IP) within the sliding window; reaching the threshold
    # locks that pair for lockout_seconds.
    lockout_threshold: int = Field(default=5, ge=1)
    lockout_seconds: int = Field(default=900, ge=1)
    login_failure_window_seconds: int = Field(default=900, ge=1)

    invitation_ttl_seconds: int = Field(default=72 * 3600, ge=300)
    # notification-service sends the invitation e-mails (/internal, with SERVICE_KEY).
    notification_service_url: str = FLEET["notification-service"].local_url
    # How a call to notification-service waits and retries, and when its breaker opens
    # (flow_shared.http.ServiceClient.from_settings). The invitation is a POST: never resent.
    upstream_read_timeout_seconds: UpstreamSeconds = 10.0
    upstream_attempts: UpstreamAttempts = 1

    # argon2-cffi's RFC 9106 "low memory" profile; tests lower these to keep CI fast.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_cost: int = Field(default=65536, ge=8)  # KiB
    argon2_parallelism: int = Field(default=4, ge=1)
    # Each hash holds `argon2_memory_cost` KiB; bounding concurrent hashes bounds memory.
    argon2_max_concurrency: int = Field(default=4, ge=1)

    # LICENSE_CHECK_INTERVAL_SECONDS: how often the licence job runs (suspends expired
    # licences, warns 30 and 7 days before); _BATCH_SIZE: organisations per transaction.
    license_check_interval_seconds: float = Field(default=86400.0, gt=0)
    license_check_batch_size: int = Field(default=100, ge=1, le=5000)

    bootstrap_admin_email: str | None = None
    bootstrap_admin_full_name: str = "Flow Platform Admin"
    bootstrap_admin_password: SecretStr | None = None

    @model_validator(mode="after")
    def _bootstrap_admin_complete(self) -> Settings:
        email, password = self.bootstrap_admin_email, self.bootstrap_admin_password
        if (email is None) != (password is None):
            raise ValueError(
                "set both BOOTSTRAP_ADMIN_EMAIL and BOOTSTRAP_ADMIN_PASSWORD, or neither"
            )
        if password is not None and len(password.get_secret_value()) < MIN_PASSWORD_LENGTH:
            raise ValueError(
                f"BOOTSTRAP_ADMIN_PASSWORD must be at least {MIN_PASSWORD_LENGTH} characters"
            )
        if email is not None and not EMAIL_PATTERN.match(email.strip()):
            raise ValueError("BOOTSTRAP_ADMIN_EMAIL is not an e-mail address")
        return self
