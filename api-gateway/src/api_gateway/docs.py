"""`/docs`: one merged OpenAPI for the whole platform, with Swagger UI served locally.

`/openapi.json` fetches each routed service's own `/openapi.json` (cached for
`openapi_cache_seconds`; a failed fetch is retried after
`openapi_retry_seconds`), keeps the paths under `/api/v1` that the route table
sends to that service, merges their components (a name two services define
differently is renamed per service, and every `$ref` to it follows), and adds
the bearer security scheme. A service that is down is just missing from the
document. Swagger UI's files come from the `fastapi-offline` package and are
served under `/static/swagger/` (no CDN; the CSP for docs allows only 'self').
"""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter, Request
from starlette.responses import FileResponse, HTMLResponse, Response

from api_gateway.config import API_PREFIX, Settings
from api_gateway.proxy import UpstreamProxy
from flow_shared.errors import NotFound, ServiceUnavailable
from flow_shared.json_codec import ORJSONResponse

log = structlog.get_logger("flow.gateway.docs")

SWAGGER_ASSETS_PACKAGE = "fastapi-offline"
STATIC_PREFIX = "/static/swagger/"
# The only files served: nothing else from the package directory is reachable.
SWAGGER_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
COMPONENT_SECTIONS = (
    "schemas",
    "responses",
    "parameters",
    "examples",
    "requestBodies",
    "headers",
    "securitySchemes",
    "links",
    "callbacks",
    "pathItems",
)
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
BEARER_SCHEME = "bearerAuth"
PASSWORD_SCHEME = "oauth2Password"  # noqa: S105 (a scheme name, not a secret)

DOCS_HTML = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Flow API</title>
<link rel="stylesheet" href="{STATIC_PREFIX}swagger-ui.css">
<link rel="icon" type="image/png" href="{STATIC_PREFIX}favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{STATIC_PREFIX}swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
}});
</script>
</body>
</html>
"""


def swagger_assets_dir() -> Path | None:
    """Where the installed Swagger UI files are, found without importing the package."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        return None
    directory = Path(spec.origin).parent / "static"
    return directory if (directory / "swagger-ui-bundle.js").is_file() else None


# ---- merging -------------------------------------------------------------------------


def _refs(value: Any) -> set[str]:
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                found.add(ref)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _rewrite_refs(value: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            key: (
                renames.get(item, item)
                if key == "$ref" and isinstance(item, str)
                else _rewrite_refs(item, renames)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_rewrite_refs(item, renames) for item in value]
    return value


def _component_ref(section: str, name: str) -> str:
    return f"#/components/{section}/{name}"


def _plan_renames(
    merged: Mapping[str, Mapping[str, Any]], incoming: Mapping[str, Any], service: str
) -> dict[str, str]:
    """Old ref → new ref for this service's components that cannot share a merged name.

    A component equal to one already merged is shared, unless it refers to a component
    of this service that had to be renamed (then it is renamed too, until nothing changes).
    """
    entries: list[tuple[str, str, Any]] = [
        (section, name, value)
        for section in COMPONENT_SECTIONS
        for name, value in _section({"components": incoming}, section).items()
    ]
    renamed: set[str] = set()
    for section, name, value in entries:
        existing = merged.get(section, {})
        if name in existing and existing[name] != value:
            renamed.add(_component_ref(section, name))
    changed = True
    while changed:
        changed = False
        for section, name, value in entries:
            ref = _component_ref(section, name)
            if ref in renamed or name not in merged.get(section, {}):
                continue
            if _refs(value) & renamed:
                renamed.add(ref)
                changed = True
    renames: dict[str, str] = {}
    for section, name, _value in entries:
        ref = _component_ref(section, name)
        if ref not in renamed:
            continue
        taken = set(merged.get(section, {})) | set(_section({"components": incoming}, section))
        candidate = f"{service}.{name}"
        suffix = 2
        while candidate in taken:
            candidate = f"{service}.{name}.{suffix}"
            suffix += 1
        renames[ref] = _component_ref(section, candidate)
    return renames


def _section(document: Mapping[str, Any], section: str) -> dict[str, Any]:
    components = document.get("components")
    entries = components.get(section) if isinstance(components, dict) else None
    return entries if isinstance(entries, dict) else {}


def _owned_by(path: str, service: str, routes: Mapping[str, str]) -> bool:
    if not path.startswith(API_PREFIX):
        return False
    prefix = path[len(API_PREFIX) :].split("/", 1)[0]
    return routes.get(prefix) == service


def merge_openapi(
    documents: Mapping[str, dict[str, Any]],
    *,
    routes: Mapping[str, str],
    public_routes: frozenset[str] | set[str],
    unavailable: list[str],
    title: str = "Flow API",
    version: str = "1.0.0",
) -> dict[str, Any]:
    """One OpenAPI 3.1 document from each service's own (service name → document)."""
    components: dict[str, dict[str, Any]] = defaultdict(dict)
    paths: dict[str, Any] = {}
    tags: dict[str, Any] = {}
    operation_ids: set[str] = set()

    for service in sorted(documents):
        original = documents[service]
        incoming = original.get("components")
        incoming = incoming if isinstance(incoming, dict) else {}
        renames = _plan_renames(components, incoming, service)
        document = _rewrite_refs(copy.deepcopy(original), renames)
        for section in COMPONENT_SECTIONS:
            for name, value in _section(document, section).items():
                ref = _component_ref(section, name)
                merged_name = renames.get(ref, ref).rsplit("/", 1)[1]
                components[section].setdefault(merged_name, value)
        for path, item in (document.get("paths") or {}).items():
            if not _owned_by(path, service, routes) or path in paths or not isinstance(item, dict):
                continue
            for method in HTTP_METHODS:
                operation = item.get(method)
                if not isinstance(operation, dict):
                    continue
                operation_id = operation.get("operationId")
                if isinstance(operation_id, str):
                    if operation_id in operation_ids:
                        operation["operationId"] = operation_id = f"{service}.{operation_id}"
                    operation_ids.add(operation_id)
            paths[path] = item
        for tag in document.get("tags") or []:
            if isinstance(tag, dict) and isinstance(tag.get("name"), str):
                tags.setdefault(tag["name"], tag)

    for entry in public_routes:
        method, _, path = entry.partition(" ")
        operation = paths.get(path, {}).get(method.lower())
        if isinstance(operation, dict):
            operation.setdefault("security", [])  # no token needed here

    components["securitySchemes"][BEARER_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from POST /api/v1/auth/login.",
    }
    components["securitySchemes"][PASSWORD_SCHEME] = {
        "type": "oauth2",
        "flows": {"password": {"tokenUrl": "/api/v1/auth/token", "scopes": {}}},
    }
    included = sorted(documents)
    description = "Every Flow service behind the gateway, in one document."
    if unavailable:
        description += " Not available right now: " + ", ".join(sorted(unavailable)) + "."
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": dict(sorted(paths.items())),
        "components": {section: dict(components[section]) for section in sorted(components)},
        "security": [{BEARER_SCHEME: []}, {PASSWORD_SCHEME: []}],
        "x-flow-services": {"included": included, "unavailable": sorted(unavailable)},
    }
    if tags:
        merged["tags"] = list(tags.values())
    return merged


# ---- fetching and caching ------------------------------------------------------------


@dataclass
class _CachedDocument:
    document: dict[str, Any] | None
    expires_at: float


class MergedOpenAPI:
    def __init__(
        self,
        proxy: UpstreamProxy,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._proxy = proxy
        self._settings = settings
        self._clock = clock
        self._cache: dict[str, _CachedDocument] = {}
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def document(self) -> dict[str, Any]:
        services = sorted(self._proxy.upstreams)
        fetched = await asyncio.gather(*(self._service_document(s) for s in services))
        documents = {s: doc for s, doc in zip(services, fetched, strict=True) if doc is not None}
        unavailable = [s for s, doc in zip(services, fetched, strict=True) if doc is None]
        return merge_openapi(
            documents,
            routes=self._settings.routes,
            public_routes=frozenset(self._settings.public_routes),
            unavailable=unavailable,
        )

    async def _service_document(self, service: str) -> dict[str, Any] | None:
        cached = self._cache.get(service)
        if cached is not None and self._clock() < cached.expires_at:
            return cached.document
        async with self._locks[service]:
            cached = self._cache.get(service)
            if cached is not None and self._clock() < cached.expires_at:
                return cached.document
            try:
                document = await self._proxy.fetch_json(
                    service, "/openapi.json", timeout_seconds=self._settings.openapi_fetch_timeout
                )
                if not isinstance(document, dict):
                    raise TypeError("an OpenAPI document is a JSON object")
            except Exception as exc:  # any failure: the service is left out for a while
                log.warning("openapi_fetch_failed", upstream=service, error=type(exc).__name__)
                self._cache[service] = _CachedDocument(
                    None, self._clock() + self._settings.openapi_retry_seconds
                )
                return None
            self._cache[service] = _CachedDocument(
                document, self._clock() + self._settings.openapi_cache_seconds
            )
            return document


# ---- routes --------------------------------------------------------------------------

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs_page() -> HTMLResponse:
    return HTMLResponse(DOCS_HTML, headers={"Cache-Control": "no-cache"})


@router.get("/openapi.json")
async def merged_openapi(request: Request) -> ORJSONResponse:
    merged: MergedOpenAPI = request.app.state.openapi
    return ORJSONResponse(await merged.document(), headers={"Cache-Control": "no-cache"})


@router.get(STATIC_PREFIX + "{asset}")
async def swagger_asset(request: Request, asset: str) -> Response:
    media_type = SWAGGER_ASSETS.get(asset)
    if media_type is None:
        raise NotFound("No such documentation asset.")
    directory: Path | None = request.app.state.swagger_assets_dir
    if directory is None:
        raise ServiceUnavailable(
            f"Swagger UI assets are not installed (package {SWAGGER_ASSETS_PACKAGE})."
        )
    return FileResponse(
        directory / asset,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=86400"},
    )
