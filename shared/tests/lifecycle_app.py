"""A minimal Flow service used by test_lifecycle.py, started as a real uvicorn process."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, FastAPI

from flow_shared.app import create_service_app
from flow_shared.config import BaseServiceSettings

router = APIRouter()


@router.get("/slow")
async def slow() -> dict[str, str]:
    await asyncio.sleep(1.0)
    return {"status": "done"}


class LifecycleSettings(BaseServiceSettings):
    service_name: str = "lifecycle-test"


def create_app() -> FastAPI:
    return create_service_app(LifecycleSettings(), title="lifecycle", routers=[router])
