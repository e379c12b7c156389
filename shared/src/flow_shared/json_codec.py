"""JSON on the wire with the types Flow uses (Decimal as string, UUID, datetime), on orjson."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from fastapi.responses import JSONResponse


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


class ORJSONResponse(JSONResponse):
    """Default response class: orjson is several times faster than json on hot paths."""

    def render(self, content: Any) -> bytes:
        return dumps(content)
