"""Liveness and readiness. Readiness runs named dependency checks concurrently.

`/health/live` says the process runs; `/health/ready` says it can do its job
(its database, Redis and broker answer) and names the check that fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from fastapi import APIRouter, Request
from starlette.responses import Response

from flow_shared.errors import problem_response
from flow_shared.json_codec import ORJSONResponse

HealthCheck = Callable[[], Awaitable[object]]
CHECK_TIMEOUT_SECONDS = 2.0

log = structlog.get_logger("flow.health")


@dataclass
class HealthRegistry:
    checks: dict[str, HealthCheck] = field(default_factory=dict)
    # A non-critical check is reported ("degraded") but does not make the service unready.
    non_critical: set[str] = field(default_factory=set)

    def add(self, name: str, check: HealthCheck, *, critical: bool = True) -> None:
        self.checks[name] = check
        if not critical:
            self.non_critical.add(name)

    async def run(self) -> dict[str, str]:
        async def one(name: str, check: HealthCheck) -> tuple[str, str]:
            try:
                await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
            except Exception as exc:  # any failure means "not ready"; the kind is logged
                log.warning("health_check_failed", check=name, error=type(exc).__name__)
                return name, "failing"
            return name, "ok"

        results = await asyncio.gather(*(one(n, c) for n, c in self.checks.items()))
        return dict(results)

    def failing(self, results: dict[str, str]) -> list[str]:
        """The critical checks of `results` that did not pass: not ready unless empty."""
        return sorted(
            name
            for name, status in results.items()
            if status != "ok" and name not in self.non_critical
        )


router = APIRouter(tags=["health"])


@router.get("/health/live", include_in_schema=False)
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready", include_in_schema=False)
async def ready(request: Request) -> Response:
    registry: HealthRegistry = request.app.state.health
    results = await registry.run()
    failing = registry.failing(results)
    if failing:
        return problem_response(
            request,
            status=503,
            code="not-ready",
            title="Not ready",
            detail="failing checks: " + ", ".join(failing),
            extra={"checks": results, "failing": failing},
        )
    degraded = any(status != "ok" for status in results.values())
    return ORJSONResponse({"status": "degraded" if degraded else "ok", "checks": results})
