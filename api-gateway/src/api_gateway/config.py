"""Gateway configuration: the route table, upstream URLs and policies, rate-limit rules.

Everything here can be changed from the environment without code:
- `ROUTES` (JSON `{"prefix": "service-name"}`) replaces the route table (by default each
  service's `routes` in services.toml);
- `<SERVICE>_URL` (e.g. `ORDER_SERVICE_URL`, set by `make up` for every
  running service) says where a service listens; a service without a URL is
  simply not routed yet (404);
- `UPSTREAM_POLICIES` (JSON `{"service-name": {"read_timeout": 60}}`) tunes
  timeouts, breaker thresholds and retries per upstream over `UPSTREAM_DEFAULT`;
- `RATE_LIMITS` (JSON `{"rule-name": {...} | null}`) adds, replaces or (with
  null) removes rate-limit rules by name, over `DEFAULT_RATE_LIMITS`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, field_validator, model_validator
from pydantic_settings import NoDecode

from flow_shared.auth import Role
from flow_shared.fleet_table import FLEET, FleetUrlSettings
from flow_shared.http import SERVER_KEEPALIVE_SECONDS
from flow_shared.networks import private_networks, split_networks
from flow_shared.ratelimit import RateLimit

API_PREFIX = "/api/v1/"

# `/api/v1/<prefix>/...` → the service that owns it (SPEC, "Gateway"): each service's
# `routes` in services.toml.
DEFAULT_ROUTES: dict[str, str] = {
    prefix: spec.name for spec in FLEET.values() for prefix in spec.routes
}

# Routes reached without a token: how one gets a token, the keys to check it with, and
# provider webhooks (authenticated by their HMAC signature at payment-service instead).
# A `{name}` segment matches any one path segment, as in the OpenAPI paths.
DEFAULT_PUBLIC_ROUTES: tuple[str, ...] = (
    "POST /api/v1/auth/register",
    "POST /api/v1/auth/login",
    "POST /api/v1/auth/token",
    "POST /api/v1/auth/refresh",
    "POST /api/v1/auth/invitations/accept",
    "GET /api/v1/auth/jwks",
    "POST /api/v1/payments/webhooks/{provider}",
)
_PATH_PARAMETER = re.compile(r"^\{[A-Za-z_][A-Za-z0-9_]*\}$")


@dataclass(frozen=True, slots=True)
class PublicRoutes:
    """The public routes, ready to match: exact `METHOD /path` entries, and templates
    whose `{name}` segments stand for exactly one non-empty segment."""

    exact: frozenset[str]
    # (method, segments); None marks a `{name}` segment.
    templates: tuple[tuple[str, tuple[str | None, ...]], ...]

    @classmethod
    def of(cls, entries: Iterable[str]) -> PublicRoutes:
        exact: set[str] = set()
        templates: list[tuple[str, tuple[str | None, ...]]] = []
        for entry in entries:
            method, _, path = entry.partition(" ")
            segments = path.split("/")
            if any(_PATH_PARAMETER.match(segment) for segment in segments):
                templates.append(
                    (method, tuple(None if _PATH_PARAMETER.match(s) else s for s in segments))
                )
            else:
                exact.add(entry)
        return cls(exact=frozenset(exact), templates=tuple(templates))

    def matches(self, method: str, path: str) -> bool:
        path = path.rstrip("/")
        if f"{method} {path}" in self.exact:
            return True
        segments = path.split("/")
        return any(
            template_method == method
            and len(template) == len(segments)
            and all(
                segment != "" if part is None else part == segment
                for part, segment in zip(template, segments, strict=True)
            )
            for template_method, template in self.templates
        )


class UpstreamPolicy(BaseModel):
    """How the gateway treats one upstream: timeouts, breaker, retries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connect_timeout: float = Field(default=1.0, gt=0)
    # Between two reads of the response; a long stream is fine while it keeps sending.
    read_timeout: float = Field(default=30.0, gt=0)
    failure_threshold: int = Field(default=5, ge=1)
    reset_timeout: float = Field(default=10.0, gt=0)
    half_open_max_calls: int = Field(default=1, ge=1)
    # Attempts for idempotent requests that failed to connect (1 = no retry).
    retry_attempts: int = Field(default=3, ge=1)
    retry_initial_wait: float = Field(default=0.05, ge=0)
    retry_max_wait: float = Field(default=0.5, ge=0)


class RateRule(BaseModel):
    """One rate limit: who is counted (`per`), on which requests, how many, and what to do
    when Redis is down (`fail_closed`; see `flow_shared.ratelimit`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per: Literal["ip", "user"]
    requests: int = Field(ge=1)
    per_seconds: float = Field(gt=0)
    burst: int | None = Field(default=None, ge=1)
    fail_closed: bool = False
    # Segment-aware: "/api/v1/orders" matches /api/v1/orders and /api/v1/orders/…
    path_prefix: str = API_PREFIX
    methods: frozenset[str] | None = None
    # For per="user" rules: the roles it applies to (None: every role).
    roles: frozenset[Role] | None = None
    # For per="ip" rules: count only requests without a verified user.
    anonymous_only: bool = False
    # What a hit is: every matching request, or (per="ip" only) a request whose bearer
    # token failed verification, so guessing or replaying tokens has a budget of its own.
    counts: Literal["requests", "invalid_tokens"] = "requests"

    @field_validator("methods")
    @classmethod
    def _upper(cls, value: frozenset[str] | None) -> frozenset[str] | None:
        return frozenset(m.upper() for m in value) if value is not None else None

    @model_validator(mode="after")
    def _invalid_tokens_are_counted_per_ip(self) -> RateRule:
        if self.counts == "invalid_tokens" and (self.per != "ip" or self.anonymous_only):
            raise ValueError('counts="invalid_tokens" needs per="ip" without anonymous_only')
        return self

    @property
    def before_authentication(self) -> bool:
        """Counted before the token is checked: per-IP rules that do not depend on who the
        caller turns out to be (so failed authentication is metered as well)."""
        return self.per == "ip" and not self.anonymous_only and self.counts == "requests"

    @property
    def limit(self) -> RateLimit:
        return RateLimit(
            self.requests, self.per_seconds, burst=self.burst, fail_closed=self.fail_closed
        )


def _credential_rule(path: str, requests: int) -> RateRule:
    # Credential endpoints fail closed: unmetered credential stuffing is the worse outage.
    return RateRule(
        per="ip",
        path_prefix=path,
        methods=frozenset({"POST"}),
        requests=requests,
        per_seconds=60,
        fail_closed=True,
    )


DEFAULT_RATE_LIMITS: dict[str, RateRule] = {
    # Every request, before authentication: room for a hospital's staff behind one NAT.
    "ip": RateRule(per="ip", requests=3000, per_seconds=60, burst=600),
    # Requests presenting a token that fails verification (bad, expired, revoked): a client
    # with an expired token needs a few before it refreshes, a token guesser many.
    "invalid-token": RateRule(
        per="ip", counts="invalid_tokens", requests=30, per_seconds=60, burst=20
    ),
    "auth-login": _credential_rule("/api/v1/auth/login", 20),
    "auth-token": _credential_rule("/api/v1/auth/token", 20),
    "auth-register": _credential_rule("/api/v1/auth/register", 10),
    "auth-refresh": _credential_rule("/api/v1/auth/refresh", 60),
    "auth-invitation-accept": _credential_rule("/api/v1/auth/invitations/accept", 10),
    "anonymous": RateRule(per="ip", anonymous_only=True, requests=120, per_seconds=60),
    "user-staff": RateRule(
        per="user", roles=frozenset({"staff"}), requests=300, per_seconds=60, burst=60
    ),
    "user-org-admin": RateRule(
        per="user", roles=frozenset({"org_admin"}), requests=600, per_seconds=60, burst=120
    ),
    "user-platform-admin": RateRule(
        per="user", roles=frozenset({"platform_admin"}), requests=1200, per_seconds=60, burst=240
    ),
}


class Settings(FleetUrlSettings):
    service_name: str = "api-gateway"

    routes: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_ROUTES))
    public_routes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_PUBLIC_ROUTES)
    )

    # Where each service listens: <SERVICE>_URL, one setting per service in services.toml
    # (FleetUrlSettings); `make up` sets it for every running service. Any other service:
    # {"name": "url"} (JSON in UPSTREAM_URLS).
    upstream_urls: dict[str, str] = Field(default_factory=dict)

    upstream_default: UpstreamPolicy = Field(default_factory=UpstreamPolicy)
    upstream_policies: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Connections kept open per upstream host for reuse (0: no cap on open connections).
    upstream_max_connections: int = Field(default=0, ge=0)
    # Below SERVER_KEEPALIVE_SECONDS, so the gateway never reuses a connection the
    # upstream is closing.
    upstream_keepalive_seconds: float = Field(default=30.0, gt=0, lt=SERVER_KEEPALIVE_SECONDS)

    rate_limits: dict[str, RateRule] = Field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    # How many reverse proxies in front of the gateway append to X-Forwarded-For; 0 = none,
    # so the client's address is the TCP peer and a client-sent X-Forwarded-For is ignored.
    trusted_proxy_hops: int = Field(default=0, ge=0)
    # X-Forwarded-For is believed only when the TCP peer is in one of these networks (the
    # proxies' own); from anyone else it is the client's word and ignored.
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        default_factory=private_networks
    )

    openapi_cache_seconds: float = Field(default=300.0, gt=0)
    openapi_retry_seconds: float = Field(default=15.0, gt=0)
    openapi_fetch_timeout: float = Field(default=3.0, gt=0)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _trusted_proxies_csv(cls, value: object) -> object:
        return split_networks(value)

    @field_validator("public_routes", mode="before")
    @classmethod
    def _public_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("public_routes")
    @classmethod
    def _public_shape(cls, value: list[str]) -> list[str]:
        normalised = []
        for entry in value:
            method, _, path = entry.partition(" ")
            if not path.startswith(API_PREFIX):
                raise ValueError(f"public route must be 'METHOD /api/v1/...', got {entry!r}")
            if any(
                ("{" in segment or "}" in segment) and not _PATH_PARAMETER.match(segment)
                for segment in path.split("/")
            ):
                raise ValueError(f"public route parameters must be whole segments: {entry!r}")
            normalised.append(f"{method.upper()} {path.strip().rstrip('/')}")
        return normalised

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _merge_rate_limits(cls, value: object) -> object:
        # Overrides name the rules they change; the others keep their defaults.
        if not isinstance(value, dict):
            return value
        merged: dict[str, Any] = dict(DEFAULT_RATE_LIMITS)
        for name, rule in value.items():
            if rule is None:
                merged.pop(name, None)
            else:
                merged[name] = rule
        return merged

    @model_validator(mode="after")
    def _production_names_its_hosts(self) -> Settings:
        # The gateway is the public edge: in production it serves only the hosts it is
        # published as (the Host header feeds redirects and caches), never any host.
        if self.is_production and (not self.trusted_hosts or "*" in self.trusted_hosts):
            raise ValueError(
                "TRUSTED_HOSTS must name the gateway's public hosts in production, not '*'"
            )
        return self

    @field_validator("upstream_policies")
    @classmethod
    def _policies_valid(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for overrides in value.values():
            UpstreamPolicy.model_validate(overrides)
        return value

    def upstream_url(self, service: str) -> str | None:
        url = getattr(self, service.replace("-", "_") + "_url", None)
        if not isinstance(url, str) or not url:
            url = self.upstream_urls.get(service)
        return url.rstrip("/") if url else None

    def upstream_policy(self, service: str) -> UpstreamPolicy:
        overrides = self.upstream_policies.get(service)
        if not overrides:
            return self.upstream_default
        return self.upstream_default.model_copy(
            update=UpstreamPolicy.model_validate(overrides).model_dump(exclude_unset=True)
        )

    def routed_services(self) -> dict[str, str]:
        """service → base URL, for every service in the route table that has a URL."""
        services: dict[str, str] = {}
        for service in self.routes.values():
            url = self.upstream_url(service)
            if url is not None:
                services[service] = url
        return services
