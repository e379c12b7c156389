"""Request dependencies of admin-service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from admin_service.clients import FleetHealthClient, UserServiceClient
from flow_shared.app_state import app_state
from flow_shared.health import HealthRegistry

UserService = Annotated[UserServiceClient, Depends(app_state("user_service", UserServiceClient))]
FleetHealthProbe = Annotated[
    FleetHealthClient, Depends(app_state("fleet_health", FleetHealthClient))
]
OwnHealthChecks = Annotated[HealthRegistry, Depends(app_state("health", HealthRegistry))]
