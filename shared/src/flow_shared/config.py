"""Settings every Flow service shares; each service subclasses `BaseServiceSettings`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Self

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from flow_shared.networks import private_networks, split_networks
from flow_shared.production_secrets import refuse_weak_secrets

PRODUCTION = "production"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def split_caller_keys(value: str) -> dict[str, str]:
    """`caller=key,caller=key` -> {caller: key}. A key may itself contain `=`."""
    keys: dict[str, str] = {}
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        caller, separator, key = part.partition("=")
        if not separator or not caller.strip() or not key.strip():
            raise ValueError(
                "TRUSTED_SERVICE_KEYS entries are `caller=key` (the calling service's name)"
            )
        if caller.strip() in keys:
            raise ValueError(f"TRUSTED_SERVICE_KEYS names {caller.strip()} twice")
        keys[caller.strip()] = key.strip()
    return keys


def join_caller_keys(keys: Mapping[str, str]) -> str:
    """{caller: key} -> the TRUSTED_SERVICE_KEYS value."""
    return ",".join(f"{caller}={key}" for caller, key in keys.items())


class BaseServiceSettings(BaseSettings):
    """Environment-driven configuration, validated at start-up.

    Only the variables named in ARCHITECTURE.md's "Runtime" section are read
    here; a service adds its own fields in its `config.py`.
    """

    # hide_input_in_errors: a refused setting's error must not print the secrets beside it.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    service_name: str
    # ENVIRONMENT or FLOW_ENV: either one saying "production" makes it production.
    environment: str = "local"
    flow_env: str | None = None
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
    # On: the relay declares every consumer's queue (the fleet's topology) before it
    # publishes. Off (the default): the deploy step has declared it (flowctl provision, the
    # broker-init job), and a service's own broker user may not (flow_shared.events.access).
    events_declare_fleet_topology: bool = False
    # An event type no queue is bound to is tried again after this long (relay.py).
    events_unroutable_retry_seconds: float = Field(default=30.0, gt=0)

    jwks_url: str = "http://127.0.0.1:8001/.well-known/jwks.json"
    jwt_issuer: str = "flow-user-service"
    jwt_audience: str = "flow"
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["RS256"])
    jwks_refetch_cooldown_seconds: float = 30.0
    jwks_cache_seconds: float = 300.0

    service_key: SecretStr | None = None
    # The services allowed to call this service's /internal routes, each with its key:
    # `order-service=<key>,pricing-service=<key>`. Each route names which of them it accepts.
    trusted_service_keys: Annotated[dict[str, SecretStr], NoDecode] = Field(default_factory=dict)

    max_body_bytes: int = 1_048_576
    trusted_hosts: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])
    # Who may read /metrics and /health/ready (Prometheus, probes, admin-service): TCP
    # peers in these networks, never through a proxy. Default: loopback and private ranges.
    monitoring_networks: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        default_factory=private_networks
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Unset: on everywhere but production (the API docs are for developers).
    docs_enabled: bool = True

    @field_validator("jwt_algorithms", "trusted_hosts", "cors_origins", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("trusted_service_keys", mode="before")
    @classmethod
    def _caller_keys(cls, value: object) -> object:
        return split_caller_keys(value) if isinstance(value, str) else value

    @field_validator("monitoring_networks", mode="before")
    @classmethod
    def _networks_csv(cls, value: object) -> object:
        return split_networks(value)

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
        if isinstance(data, dict):
            if data.get("flow_env") == PRODUCTION:
                data["environment"] = PRODUCTION
            if data.get("environment") == PRODUCTION:
                data.setdefault("docs_enabled", False)
        return data

    @model_validator(mode="after")
    def _production_secrets_are_real(self) -> Self:
        # Every SecretStr field, a subclass's too: an example value in production is public.
        if self.is_production:
            refuse_weak_secrets(self)
        return self

    @property
    def is_production(self) -> bool:
        return self.environment == PRODUCTION


# How a service that calls others waits, retries and gives up (ServiceClient.from_settings).
UpstreamSeconds = Annotated[float, Field(gt=0)]
UpstreamAttempts = Annotated[int, Field(ge=1, le=5)]
BreakerThreshold = Annotated[int, Field(ge=1)]


class UpstreamCallerSettings(BaseServiceSettings):
    """The settings of a service that calls other services: UPSTREAM_CONNECT_TIMEOUT_SECONDS,
    UPSTREAM_READ_TIMEOUT_SECONDS, UPSTREAM_ATTEMPTS (tries of an idempotent call),
    BREAKER_FAILURE_THRESHOLD and BREAKER_RESET_TIMEOUT_SECONDS (each upstream's breaker).
    A service with other needs redeclares a field with its alias and its own default."""

    upstream_connect_timeout_seconds: UpstreamSeconds = 1.0
    upstream_read_timeout_seconds: UpstreamSeconds = 5.0
    upstream_attempts: UpstreamAttempts = 3
    breaker_failure_threshold: BreakerThreshold = 5
    breaker_reset_timeout_seconds: UpstreamSeconds = 10.0
