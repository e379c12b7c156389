"""Settings every Flow service shares; each service subclasses `BaseServiceSettings`."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class BaseServiceSettings(BaseSettings):
    """Environment-driven configuration, validated at start-up.

    Only the variables named in ARCHITECTURE.md's "Runtime" section are read
    here; a service adds its own fields in its `config.py`.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    service_name: str
    environment: str = "local"
    log_level: str = "INFO"

    database_url: SecretStr | None = None
    db_schema: str | None = None
    db_pool_size: int = 10
    db_max_overflow: int = 10

    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    # Tests run against the shared Redis and isolate themselves by prefix.
    redis_key_prefix: str = "flow:"

    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    events_exchange: str = "flow.events"

    jwks_url: str = "http://127.0.0.1:8001/.well-known/jwks.json"
    jwt_issuer: str = "flow-user-service"
    jwt_audience: str = "flow"
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["RS256"])
    jwks_refetch_cooldown_seconds: float = 30.0
    jwks_cache_seconds: float = 300.0

    service_key: SecretStr | None = None
    # Keys of the services allowed to call this service's /internal routes.
    trusted_service_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    max_body_bytes: int = 1_048_576
    trusted_hosts: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Unset: on everywhere but production (the API docs are for developers).
    docs_enabled: bool = True

    @field_validator(
        "jwt_algorithms", "trusted_service_keys", "trusted_hosts", "cors_origins", mode="before"
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("jwt_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        # Pinning asymmetric algorithms is what defeats "HS256 signed with the public key".
        allowed = {"RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA", "PS256"}
        bad = [alg for alg in value if alg not in allowed]
        if bad or not value:
            raise ValueError(f"jwt_algorithms must be asymmetric, got {value}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_docs_in_production_unless_asked(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("environment") == "production":
            data.setdefault("docs_enabled", False)
        return data

    @property
    def is_production(self) -> bool:
        return self.environment == "production"
