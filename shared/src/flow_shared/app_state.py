"""Typed request dependencies on what a service's app built at start-up.

A service's `deps.py` names each object its handlers need once:
`SettingsDep = Annotated[Settings, Depends(app_state("settings", Settings))]`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import Request

Held = TypeVar("Held")


def app_state(name: str, kind: type[Held]) -> Callable[[Request], Awaitable[Held]]:
    """A dependency answering `request.app.state.<name>`, typed as `kind`.

    Checked against `kind` on use: an app that was built without it, or with the wrong
    object, fails loudly instead of handing a handler something else."""

    # `async def`: FastAPI runs a plain `def` dependency in its thread pool, a thread
    # hand-off on every request.
    async def from_app_state(request: Request) -> Held:
        held = getattr(request.app.state, name, None)
        if not isinstance(held, kind):
            raise RuntimeError(f"app.state.{name} is not a {kind.__name__}")
        return held

    from_app_state.__name__ = f"app_state_{name}"
    return from_app_state
