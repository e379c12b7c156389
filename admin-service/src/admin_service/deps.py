"""Request dependencies of admin-service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from admin_service.clients import UserServiceClient


def get_user_service(request: Request) -> UserServiceClient:
    client: UserServiceClient = request.app.state.user_service
    return client


UserService = Annotated[UserServiceClient, Depends(get_user_service)]
