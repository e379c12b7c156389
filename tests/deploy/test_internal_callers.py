"""Service keys are scoped per route: each /internal route names the services it accepts
(flow_shared.auth.accepts_callers), and those are exactly the callers services.toml gives
the service a key of — no route accepts a service that holds no key for it, and no
service holds a key that opens nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from flow_shared.auth import route_callers
from flow_shared.services import ServiceSpec, load_service_specs

SPECS = load_service_specs(Path(__file__).resolve().parents[2])


def internal_routes(app: FastAPI) -> list[APIRoute]:
    """The routes of the /internal routers the service registered (create_service_app)."""
    return [
        route
        for router in app.state.internal_routers
        for route in router.routes
        if isinstance(route, APIRoute)
    ]


@pytest.mark.parametrize("spec", SPECS, ids=[spec.name for spec in SPECS])
def test_internal_routes_accept_exactly_the_callers_of_services_toml(
    spec: ServiceSpec, fleet_apps: dict[str, FastAPI]
) -> None:
    accepted: set[str] = set()
    routes = internal_routes(fleet_apps[spec.name])
    assert all(route.path.startswith("/internal/") for route in routes)
    for route in routes:
        callers = route_callers(route)
        assert callers, f"{spec.name} {route.path} names no caller"
        accepted |= callers

    assert accepted == set(spec.callers)


def test_pricing_may_not_release_a_reservation(fleet_apps: dict[str, FastAPI]) -> None:
    # The finding that started this: a caller's key opened every route of the service.
    [release] = [
        route
        for route in internal_routes(fleet_apps["inventory-service"])
        if route.path.endswith("/release")
    ]

    assert route_callers(release) == {"order-service"}
