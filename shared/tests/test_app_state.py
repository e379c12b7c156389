"""app_state: a typed dependency on what the app holds."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI

from flow_shared.app_state import app_state


class Greeter:
    def greet(self) -> str:
        return "hello"


def make_app(held: object) -> FastAPI:
    app = FastAPI()
    app.state.greeter = held

    @app.get("/greet")
    async def greet(greeter: Annotated[Greeter, Depends(app_state("greeter", Greeter))]) -> str:
        return greeter.greet()

    return app


async def test_the_handler_gets_the_object_the_app_holds() -> None:
    transport = httpx.ASGITransport(app=make_app(Greeter()))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        answer = await client.get("/greet")
    assert answer.json() == "hello"


async def test_an_app_holding_the_wrong_object_fails_loudly() -> None:
    transport = httpx.ASGITransport(app=make_app("not a greeter"), raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        with pytest.raises(RuntimeError, match=r"app\.state\.greeter is not a Greeter"):
            await client.get("/greet")
