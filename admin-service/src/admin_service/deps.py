"""Request dependencies of admin-service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from admin_service.clients import FleetHealthClient, UserServiceClient


async def get_user_service(request: Request) -> UserServiceClient:
    client: UserServiceClient = request.app.state.user_service
    return client


async def get_fleet_health_client(request: Request) -> FleetHealthClient:
    client: FleetHealthClient = request.app.state.fleet_health
    return client


UserService = Annotated[UserServiceClient, Depends(get_user_service)]
FleetHealthProbe = Annotated[FleetHealthClient, Depends(get_fleet_health_client)]
