"""The edge: which requests may pass, to which service, as whom, how often.

Every request under `/api/v1/` goes through the same steps, in order:
1. the path is checked (no `/internal` segment, no dot segments or encoded
   slashes: such paths are 404 and never proxied);
2. its first segment picks the owning service from the route table (404 when
   unknown or when that service has no URL configured yet);
3. the per-IP rules that do not depend on the caller are counted, before any
   token is looked at, so failed authentication is metered too (429 with `Retry-After`);
4. the JWT is verified, except on the public routes; a token that fails counts
   against the stricter per-IP `invalid_tokens` budget (429 once it is spent);
5. the rules that depend on the verified caller (per user, anonymous) are counted;
6. the request is proxied (see `proxy.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import APIRouter, Request
from starlette.responses import Response

from api_gateway.config import API_PREFIX, PublicRoutes, RateRule, Settings
from api_gateway.proxy import ClientInfo, Upstream, UpstreamProxy
from flow_shared.auth import Principal, TokenVerifier, bearer_token
from flow_shared.errors import NotFound, Unauthorized
from flow_shared.metrics import business_counter
from flow_shared.networks import Network, address_in
from flow_shared.ratelimit import RateLimit, RateLimiter, enforce

PROXIED_METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]
# Encoded forms that could turn into a separator or a traversal after one more decoding.
_FORBIDDEN_RAW = ("%2f", "%5c", "%2e", "%00", "\\")

INVALID_TOKENS = business_counter(
    "flow_gateway_invalid_tokens_total",
    "Requests refused because their bearer token failed verification "
    "(malformed, expired, revoked, unknown key).",
)


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    name: str
    rule: RateRule
    limit: RateLimit
    prefix: str

    def matches(self, method: str, path: str, principal: Principal | None) -> bool:
        if self.rule.methods is not None and method not in self.rule.methods:
            return False
        if not (path == self.prefix or path.startswith(self.prefix + "/")):
            return False
        if self.rule.per == "user":
            return principal is not None and (
                self.rule.roles is None or principal.role in self.rule.roles
            )
        return not (self.rule.anonymous_only and principal is not None)


@dataclass(frozen=True, slots=True)
class EdgePolicy:
    """The settings the edge reads on every request, prepared once at start-up."""

    routes: dict[str, str]
    public_routes: PublicRoutes
    # Counted before authenticating; on a failed token; after (they need the caller).
    pre_auth_rules: tuple[_CompiledRule, ...]
    invalid_token_rules: tuple[_CompiledRule, ...]
    post_auth_rules: tuple[_CompiledRule, ...]
    trusted_proxy_hops: int
    trusted_proxies: tuple[Network, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> EdgePolicy:
        rules = [
            _CompiledRule(name, rule, rule.limit, rule.path_prefix.rstrip("/"))
            for name, rule in settings.rate_limits.items()
        ]
        return cls(
            routes=dict(settings.routes),
            public_routes=PublicRoutes.of(settings.public_routes),
            pre_auth_rules=tuple(r for r in rules if r.rule.before_authentication),
            invalid_token_rules=tuple(r for r in rules if r.rule.counts == "invalid_tokens"),
            post_auth_rules=tuple(
                r for r in rules if not r.rule.before_authentication and r.rule.counts == "requests"
            ),
            trusted_proxy_hops=settings.trusted_proxy_hops,
            trusted_proxies=tuple(settings.trusted_proxies),
        )

    def is_public(self, method: str, path: str) -> bool:
        method = "GET" if method == "HEAD" else method
        return self.public_routes.matches(method, path)


def api_route_prefix(raw_path: bytes, path: str) -> str:
    """The route-table prefix of a safe `/api/v1/<prefix>/...` path; 404 for anything else."""
    refused = NotFound("No API is served at this path.")
    raw = raw_path.decode("latin-1").lower()
    if any(bad in raw for bad in _FORBIDDEN_RAW) or not path.startswith(API_PREFIX):
        raise refused
    segments = path[len(API_PREFIX) :].split("/")
    for index, segment in enumerate(segments):
        is_last = index == len(segments) - 1
        # One trailing slash is allowed; `//`, `.` and `..` are not.
        if (segment == "" and not (is_last and index > 0)) or segment in (".", ".."):
            raise refused
        if segment.split(";", 1)[0].lower() == "internal":
            raise refused
    return segments[0]


def client_info(request: Request, policy: EdgePolicy) -> ClientInfo:
    """The client's address, the one place the gateway decides it (rate limits use it, and
    services behind the gateway get it as `X-Flow-Client-IP`): the TCP peer, unless that
    peer is a trusted proxy (`TRUSTED_PROXIES`) and `TRUSTED_PROXY_HOPS` say more."""
    trusted_proxy_hops = policy.trusted_proxy_hops
    peer = request.client.host if request.client is not None else "unknown"
    host = request.headers.get("host")
    if trusted_proxy_hops == 0 or not address_in(peer, policy.trusted_proxies):
        # Anyone else's X-Forwarded-For is the client's own claim about itself.
        return ClientInfo(ip=peer, forwarded_for=peer, proto=request.url.scheme, host=host)
    chain = [
        part.strip()
        for value in request.headers.getlist("x-forwarded-for")
        for part in value.split(",")
        if part.strip()
    ]
    # Each trusted proxy appended the address it saw; the one `hops` from the end is the client.
    ip = chain[-trusted_proxy_hops] if len(chain) >= trusted_proxy_hops else peer
    trusted_chain = chain[-trusted_proxy_hops:] if chain else []
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return ClientInfo(
        ip=ip, forwarded_for=", ".join([*trusted_chain, peer]), proto=proto, host=host
    )


def resolve_upstream(policy: EdgePolicy, proxy: UpstreamProxy, prefix: str) -> Upstream:
    service = policy.routes.get(prefix)
    upstream = proxy.upstream(service) if service is not None else None
    if upstream is None:
        raise NotFound("No API is served at this path.")
    return upstream


async def authenticate(
    request: Request,
    policy: EdgePolicy,
    verifier: TokenVerifier,
    limiter: RateLimiter,
    client_ip: str,
) -> Principal | None:
    """The verified caller, or None on a public route (whose token is left to the service).

    A token that fails verification is counted (metric, and the per-IP invalid-token
    budget): 401 while the budget lasts, 429 with `Retry-After` once it is spent."""
    method, path = request.method, request.scope["path"]
    if policy.is_public(method, path):
        return None
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("A bearer token is required.")
    try:
        principal = await verifier.verify(token)
    except Unauthorized:
        INVALID_TOKENS.inc()
        await apply_rate_limits(limiter, policy.invalid_token_rules, method, path, None, client_ip)
        raise
    request.state.principal = principal
    return principal


async def apply_rate_limits(
    limiter: RateLimiter,
    rules: Sequence[_CompiledRule],
    method: str,
    path: str,
    principal: Principal | None,
    client_ip: str,
) -> None:
    for compiled in rules:
        if not compiled.matches(method, path, principal):
            continue
        subject = str(principal.user_id) if compiled.rule.per == "user" and principal else client_ip
        await enforce(limiter, compiled.name, subject, compiled.limit)


router = APIRouter()


@router.api_route("/api/v1/{path:path}", methods=PROXIED_METHODS, include_in_schema=False)
async def proxy_api(request: Request) -> Response:
    state = request.app.state
    policy: EdgePolicy = state.edge_policy
    path: str = request.scope["path"]
    prefix = api_route_prefix(request.scope.get("raw_path") or path.encode(), path)
    upstream = resolve_upstream(policy, state.proxy, prefix)
    client = client_info(request, policy)
    limiter: RateLimiter = state.rate_limiter
    await apply_rate_limits(limiter, policy.pre_auth_rules, request.method, path, None, client.ip)
    principal = await authenticate(request, policy, state.token_verifier, limiter, client.ip)
    await apply_rate_limits(
        limiter, policy.post_auth_rules, request.method, path, principal, client.ip
    )
    proxy: UpstreamProxy = state.proxy
    return await proxy.forward(request, upstream, client)
