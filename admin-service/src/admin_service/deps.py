"""Request dependencies of admin-service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from admin_service.clients import FleetHealthClient, UserServiceClient
from flow_shared.health import HealthRegistry


async def get_user_service(request: Request) -> UserServiceClient:
    client: UserServiceClient = request.app.state.user_service
    return client


async def get_fleet_health_client(request: Request) -> FleetHealthClient:
    client: FleetHealthClient = request.app.state.fleet_health
    return client


async def get_own_health_checks(request: Request) -> HealthRegistry:
    registry: HealthRegistry = request.app.state.health
    return registry


UserService = Annotated[UserServiceClient, Depends(get_user_service)]
FleetHealthProbe = Annotated[FleetHealthClient, Depends(get_fleet_health_client)]
OwnHealthChecks = Annotated[HealthRegistry, Depends(get_own_health_checks)]
